"""
Synthesise the birthplace fixtures in the formats of Stanford CS224N's assignment 5.

    python tests/data/make_birthplace.py                  # rewrites tests/data/birthplace/

Every person is invented (names are drawn from made-up syllables), every place is real. The
output has the course files' layout, so data/birthplace/prepare.py and evaluate.py read it
unchanged, but none of the course's text:
    wiki.txt                 one paragraph per person per line: "Name. Text about them ."
    birth_places_train.tsv   "Where was Name born?<TAB>Place" lines
    birth_dev.tsv            the same for other people
    birth_test_inputs.tsv    "Where was Name born?" lines, for a third group
As in the course, everyone asked about has a paragraph; the answer is the first part of the
place the paragraph names ("Columbus" for "Columbus, Ohio"), and London is the most common
answer, so the "London every time" baseline scores a few percent. Some paragraphs also name
a second place (where the person died or worked) to make the task a probe, not a lookup.
The fixed seed makes the output the same on every run and every Python 3.
"""

import argparse
import os
import random

SEED = 224
N_TRAIN, N_DEV, N_TEST = 300, 100, 60

# real places, with how often each is a birthplace (London first, as in the course data)
PLACES = [("London", 7), ("Chicago", 6), ("Paris", 6), ("England", 4), ("Toronto", 3), ("Milan", 3),
          ("Dublin", 3), ("Boston", 3), ("Sydney", 3), ("Philadelphia", 3), ("Berlin", 3), ("Glasgow", 3),
          ("New York City", 3), ("Columbus, Ohio", 2), ("Manchester, England", 2), ("Kraków", 2),
          ("Zürich", 2), ("São Paulo", 2), ("Montréal", 2), ("Reykjavík", 1), ("Łódź", 1), ("Málaga", 1),
          ("Göteborg", 1), ("Bogotá", 1), ("Düsseldorf", 1), ("Tbilisi", 1), ("Mumbai", 2), ("Lagos", 2),
          ("Nairobi", 1), ("Accra", 1), ("Seoul", 1), ("Osaka", 1), ("Hanoi", 1), ("Lima", 1),
          ("Havana", 1), ("Vienna", 2), ("Prague", 2), ("Budapest", 1), ("Athens", 1), ("Istanbul", 1),
          ("Cairo", 1), ("Baltimore, Maryland", 1), ("Detroit", 2), ("Atlanta", 1), ("Melbourne", 2),
          ("Auckland", 1), ("Cape Town", 1), ("Edinburgh", 2), ("Cardiff", 1), ("Lyon", 1), ("Naples", 1),
          ("Porto", 1), ("Copenhagen", 1), ("Oslo", 1), ("Helsinki", 1), ("Ontario", 1), ("Australia", 2),
          ("Scotland", 1), ("Ireland", 1), ("Italy", 1), ("Lebanon", 1), ("Texas", 1)]

# syllables of invented names: a few carry accents, as real names do
FIRST = ["Al", "Be", "Ca", "Da", "El", "Fe", "Ga", "Hal", "Io", "Jo", "Ka", "Le", "Ma", "No", "Ol", "Pe",
         "Ra", "Sa", "Te", "Ul", "Va", "Wi", "Ya", "Zo", "Mé", "Jö", "Bé", "Ša"]
MIDDLE = ["ra", "li", "na", "ber", "do", "mi", "ren", "so", "ta", "vi", "lo", "ne", "ri", "ñe", "ko"]
FIRST_END = ["n", "a", "o", "ric", "ne", "la", "s", "th", "lie", "us", "el", "ard", ""]
LAST = ["Hal", "Bren", "Cor", "Dun", "Fal", "Gor", "Hart", "Kel", "Lind", "Mor", "Nor", "Oster", "Pel",
        "Quin", "Rad", "Sel", "Tor", "Vas", "Wex", "Yar", "Zel", "Ødeg", "Mül", "Łas", "Brá"]
LAST_END = ["brecht", "quist", "ing", "eanu", "ura", "ov", "ski", "wick", "ard", "ell", "aux", "sson", "ini",
            "ez", "oya", "ler", "ak", "ström", "ek", "ani"]
JOBS = ["painter", "journalist", "footballer", "politician", "composer", "botanist", "architect",
        "novelist", "chemist", "film director", "engineer", "cricketer", "poet", "historian", "singer",
        "physician", "sculptor", "economist", "actor", "mathematician", "printer and lithographer"]
ADJECTIVES = ["an award-winning", "a former", "a celebrated", "a noted", "an influential", "a"]
MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September",
          "October", "November", "December"]


def invented_name(rng):
    first = rng.choice(FIRST) + rng.choice(MIDDLE) * rng.randint(0, 1) + rng.choice(FIRST_END)
    last = rng.choice(LAST) + rng.choice(LAST_END)
    if rng.random() < 0.2:  # a middle initial now and then
        return f"{first} {rng.choice('ABCDEFGHJKLMNPRSTW')}. {last}"
    return f"{first} {last}"


def date(rng, year):
    return f"{rng.randint(1, 28)} {rng.choice(MONTHS)} {year}"


def paragraph(rng, name, place, other):
    """One wiki.txt line about name, born in place; other is a second place it may mention."""
    surname, job, adj = name.split()[-1], rng.choice(JOBS), rng.choice(ADJECTIVES)
    born = rng.randint(1780, 1995)
    died = born + rng.randint(30, 90)
    templates = [
        f"{name} is {adj} {job} born in {place} .",
        f"Born in {place}, {surname} became {adj} {job} and later moved to {other} .",
        f"{name} (born {date(rng, born)} in {place}) is {adj} {job} .",
        f"{surname} was born on {date(rng, born)} in {place} .",
        f"{name} ({date(rng, born)} {place} -- {date(rng, died)} {other}) was {adj} {job} .",
        f"{name} was {adj} {job} who was born in {place} and now lives in {other} .",
        f"According to one source, {surname} was born in {place}, the child of a {rng.choice(JOBS)} .",
    ]
    return f"{name}. {rng.choice(templates)}"


def people(rng, n):
    names, seen = [], set()
    while len(names) < n:
        name = invented_name(rng)
        if name not in seen:
            seen.add(name)
            names.append(name)
    places, weights = zip(*PLACES)
    born = rng.choices(places, weights=weights, k=n)
    return [(name, place, rng.choice([p for p in places if p != place])) for name, place in zip(names, born)]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out_dir", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "birthplace"))
    args = ap.parse_args()

    rng = random.Random(SEED)
    everyone = people(rng, N_TRAIN + N_DEV + N_TEST)
    train, dev, test = everyone[:N_TRAIN], everyone[N_TRAIN:N_TRAIN + N_DEV], everyone[N_TRAIN + N_DEV:]
    wiki = [paragraph(rng, name, place, other) for name, place, other in everyone]
    rng.shuffle(wiki)  # the course's wiki.txt does not follow the question files' order either

    def answer(place):
        return place.split(",")[0]

    os.makedirs(args.out_dir, exist_ok=True)
    files = {
        "wiki.txt": wiki,
        "birth_places_train.tsv": [f"Where was {n} born?\t{answer(p)}" for n, p, _ in train],
        "birth_dev.tsv": [f"Where was {n} born?\t{answer(p)}" for n, p, _ in dev],
        "birth_test_inputs.tsv": [f"Where was {n} born?" for n, _, _ in test],
    }
    for name, lines in files.items():
        with open(os.path.join(args.out_dir, name), "w", encoding="utf-8", newline="\n") as f:
            f.write("\n".join(lines) + "\n")
        print(f"{name}: {len(lines)} lines")


if __name__ == "__main__":
    main()
