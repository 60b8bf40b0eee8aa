"""
Knowledge augmentation for the knowledge probe: rewritten copies of wiki.txt's paragraphs, by
rules that know nothing of the question asked later, so that a fact is seen in more than one form.

Allen-Zhu & Li 2023 ("Physics of Language Models: Part 3.1, Knowledge Storage and Extraction",
their Fig. 3; their figures, not measured here) pretrain on biographies and finetune on the
questions of half of the people: the other half's facts are extracted about 10% of the time from
one fixed text per person, and 50 to 96% when each biography is seen as several rewrites (other
sentence orders, the full name where a pronoun stood, other wordings). Their reading: a fact
that always follows the same words is stored as "what comes after those words", one that
follows the name in many forms is stored with the person, where a question can reach it.

The course's paragraphs are mostly one sentence after the name ("Name. Name is a journalist,
writer and translator born in Lebanon ."), so the rules work on clauses:
    fullname   the person's surname alone, or "He"/"She", becomes the full name of the paragraph's
               opening ("Stanley Corrsin. Corrsin was born ..." -> "... Stanley Corrsin was born ...")
    shuffle    the clauses of the text after the name (split at ", ") in a random order
    tail       the text after the name from a random clause on (the earlier clauses dropped), so a
               late fact comes right after the name, where span corruption's truncation keeps it
Each copy keeps the opening "Name. " and ends with " .". The rules look at the paragraph only:
no rule looks for "born" or a place, and no word enters a copy that the paragraph (or its name)
does not hold. rewrite() applies the chosen rules to one paragraph; augment() makes the copies.
"""

import re

import numpy as np

RULES = ("fullname", "shuffle", "tail")
OPENING = re.compile(r"(.*?(?:\w\w|\.))\. ")  # "Name. ": initials ("Douglas P. Fry.") and "Jr.." kept whole
SUFFIXES = {"Jr", "Jr.", "Sr", "Sr.", "II", "III", "IV"}


def split_opening(paragraph):
    """"Name. text ." -> ("Name", "text ."), or (None, paragraph) where no opening is found."""
    m = OPENING.match(paragraph)
    return (m.group(1), paragraph[m.end():]) if m else (None, paragraph)


def full_names(name, text):
    """The surname standing alone, and "He"/"She"/"he"/"she", replaced by the full name. A surname
    right after another capitalised word ("Douglas P Fry") is part of a longer mention and stays."""
    words = [w.strip(",") for w in name.split()]
    surname = next((w for w in reversed(words) if w not in SUFFIXES and len(w) > 2), None)
    parts = text.split(name)  # the full name where it already stands is left alone
    for i, part in enumerate(parts):
        if surname and len(words) > 1:
            part = re.sub(rf"\b{re.escape(surname)}\b",
                          lambda m: m.group(0) if re.search(r"[A-Z][\w.]*\s$", m.string[:m.start()]) else name, part)
        parts[i] = re.sub(r"\b(?:He|She|he|she)\b", name, part)
    return name.join(parts)


def clauses(text):
    """"a, b, c ." -> ["a", "b", "c"]: the text's clauses, without its closing " ."."""
    body = text[:-2] if text.endswith(" .") else text
    return [c for c in body.split(", ") if c]


def rewrite(paragraph, rules, rng):
    """One copy of paragraph under rules (a subset of RULES); rng draws the random rules' choices."""
    name, text = split_opening(paragraph)
    if name is None:
        return paragraph  # no "Name. " opening to keep: the paragraph as it is
    if "fullname" in rules:
        text = full_names(name, text)
    parts = clauses(text)
    if "shuffle" in rules and len(parts) > 1:
        parts = [parts[i] for i in rng.permutation(len(parts))]
    if "tail" in rules and len(parts) > 1:
        parts = parts[rng.integers(len(parts)):]
    return f"{name}. {', '.join(parts)} ."


def augment(paragraphs, rules, copies, seed):
    """copies rewrites of each paragraph, paragraph by paragraph: each paragraph's copies come from
    a generator of its own (seed, its index), so they do not depend on the other paragraphs."""
    unknown = [r for r in rules if r not in RULES]
    if unknown or not rules:
        raise ValueError(f"unknown augmentation rule {unknown[0] if unknown else '(none given)'}; use some of "
                         f"{', '.join(RULES)}")
    out = []
    for i, p in enumerate(paragraphs):
        rng = np.random.default_rng([seed, i])
        out += [rewrite(p, rules, rng) for _ in range(copies)]
    return out
