"""
The knowledge probe of Stanford CS224N (assignment 5): can a small GPT store facts while
pretraining on Wikipedia-style text and recall them after finetuning on "Where was X born?".

    python data/birthplace/prepare.py                 # the course files placed in data/birthplace/
    python data/birthplace/prepare.py --input=DIR     # or a folder holding them
    python data/birthplace/prepare.py --holdout=0     # finetune on all 2,000 questions (the course's split)
    python data/birthplace/prepare.py --augment=fullname,shuffle --copies=4   # and rewrites (augment.py)

DIR holds the four files of the assignment's handout (the course materials, a5.zip):
wiki.txt (one paragraph about one person per line), birth_places_train.tsv and
birth_dev.tsv ("question<TAB>answer" lines) and birth_test_inputs.tsv (questions only).

One character vocabulary covers all four files, after two symbols of its own: PAD "□" (id 0)
and MASK "⁇" (id 1). Two prepared datasets come out, each a token stream with a meta.json
that names data/birthplace/batches.py, which turns lines into training examples:
    data/birthplace/pretrain/   train.bin = val.bin = wiki.txt   (span corruption; val is the
                                same documents, since pretraining is about storing them),
                                qa.bin = the finetune's train.bin (mixed training, --qa_share),
                                aug.bin = --copies rewrites of each paragraph (--augment, --aug_share)
    data/birthplace/finetune/   train.bin = birth_places_train.tsv less the holdout,
                                val.bin = the holdout (--holdout=0: val.bin = birth_dev.tsv)

The holdout (--holdout=N, 200 by default: a fixed random draw of the training people, every
question about a person on the same side; holdout_rows) is where a finetuning recipe is chosen:
train.py's val loss and evaluate.py --questions=holdout measure it, and dev stays untouched
until a recipe is final. The finetune folder also keeps
the question files, holdout.tsv, birth_dev.tsv and birth_test_inputs.tsv, and its meta.json
names them, so evaluate.py finds dev and the test inputs however the data came in.
On the course files:
    vocab size: 257 (255 characters + PAD + MASK)
    pretrain: 2,937 documents, 418,352 characters; 1,800 questions to mix in
    finetune: 1,800 train / 200 val (holdout) questions; dev 500, test inputs 437
"""

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
from data.birthplace.augment import RULES, augment  # noqa: E402
from data.birthplace.batches import MASK_CHAR, PAD_CHAR, PERSON  # noqa: E402
from data.writer import write_dataset  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
FILES = ("wiki.txt", "birth_places_train.tsv", "birth_dev.tsv", "birth_test_inputs.tsv")
HOLDOUT_SEED = 224  # the holdout is the same draw on every machine


def read_files(folder):
    texts = {}
    for name in FILES:
        path = os.path.join(folder, name)
        if not os.path.isfile(path):
            sys.exit(f"error: {path} is missing; put the CS224N a5 files ({', '.join(FILES)}) there "
                     f"or pass --input=DIR")
        with open(path, encoding="utf-8") as f:
            texts[name] = f.read()
    return texts


def holdout_rows(questions, n, seed=HOLDOUT_SEED):
    """The rows of the n questions kept out of finetuning, drawn by person: the rows are shuffled
    by a fixed seed and each row drawn brings every row about its person, while they fit in n, so
    a person's questions all land on the same side (the course's train file asks about 9 people
    twice, some with different answers). Single rows fill n exactly; the draw is the row-by-row one
    of earlier versions but for those people. A question not in the course's form is a person of
    its own. Returns sorted row indices."""
    person = [m.group(1) if (m := PERSON.fullmatch(q)) else q for q in questions]
    rows = {}  # person -> the rows that ask about them
    for i, p in enumerate(person):
        rows.setdefault(p, []).append(i)
    held = set()
    for i in np.random.default_rng(seed).permutation(len(questions)):
        if i not in held and len(held) + len(rows[person[i]]) <= n:
            held.update(rows[person[i]])
        if len(held) == n:
            break
    return sorted(held)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--input", default=HERE, help="folder with the four course files")
    ap.add_argument("--out_dir", default=HERE, help="writes pretrain/ and finetune/ here")
    ap.add_argument("--holdout", type=int, default=200,
                    help="training questions kept out of finetuning, to choose a recipe on (0: none, val = dev)")
    ap.add_argument("--augment", default="",
                    help=f"knowledge augmentation: rewrite rules for pretrain/aug.bin, comma-separated, of {', '.join(RULES)} "
                         f"(train.py --aug_share draws from it)")
    ap.add_argument("--copies", type=int, default=4, help="augmentation: rewritten copies of each paragraph")
    ap.add_argument("--augment_seed", type=int, default=0, help="augmentation: the seed of the random rules")
    args = ap.parse_args(argv)
    rules = tuple(r for r in args.augment.split(",") if r)
    if bad := [r for r in rules if r not in RULES]:
        sys.exit(f"error: --augment={args.augment}: unknown rule {bad[0]!r}; use some of {', '.join(RULES)}")
    if rules and args.copies < 1:
        sys.exit(f"error: --copies={args.copies} must be at least 1 with --augment")

    texts = read_files(args.input)
    chars = "".join(sorted(set("".join(texts.values()))))
    if PAD_CHAR in chars or MASK_CHAR in chars:
        sys.exit(f"error: the data already contains {PAD_CHAR!r} or {MASK_CHAR!r}, which this task reserves")
    chars = PAD_CHAR + MASK_CHAR + chars  # PAD is id 0, MASK id 1
    stoi = {c: i for i, c in enumerate(chars)}
    print(f"vocab size: {len(chars)} ({len(chars) - 2} characters + PAD + MASK)")
    common = dict(tokenizer={"kind": "char", "chars": chars}, vocab_size=len(chars),
                  batch_module="data.birthplace.batches", pad=stoi[PAD_CHAR], mask=stoi[MASK_CHAR],
                  newline=stoi["\n"], tab=stoi["\t"], source=os.path.abspath(args.input))

    def encode(name):
        return [stoi[c] for c in texts[name]]

    def encode_lines(lines):
        return [stoi[c] for c in "".join(line + "\n" for line in lines)]

    def question_lines(name):
        lines = [line for line in texts[name].split("\n") if line]
        bad = [line for line in lines if line.count("\t") != 1]
        if bad:
            sys.exit(f"error: {name} has lines that are not 'question<TAB>answer', e.g. {bad[0]!r}")
        return lines

    train_q, dev_q = question_lines("birth_places_train.tsv"), question_lines("birth_dev.tsv")
    if not 0 <= args.holdout < len(train_q):
        sys.exit(f"error: --holdout={args.holdout} must be at least 0 and below the {len(train_q)} training "
                 f"questions")
    held = set(holdout_rows([line.split("\t")[0] for line in train_q], args.holdout))
    holdout = [q for i, q in enumerate(train_q) if i in held]
    train_q = [q for i, q in enumerate(train_q) if i not in held]
    files = {"dev": "birth_dev.tsv", "test": "birth_test_inputs.tsv"}
    if args.holdout:
        files["holdout"] = "holdout.tsv"
    wiki = texts["wiki.txt"]
    folder = os.path.join(args.out_dir, "pretrain")
    # the questions that mixed training may show pretraining: the finetune's, never the holdout's or dev's
    streams, extra = {"qa": encode_lines(train_q)}, {}
    if rules:  # rewrites of every paragraph, the holdout's and dev's people too, as wiki.txt holds them all
        copies = augment([line for line in wiki.split("\n") if line], rules, args.copies, args.augment_seed)
        streams["aug"] = encode_lines(copies)
        extra["augment"] = dict(rules=list(rules), copies=args.copies, seed=args.augment_seed)
    meta = write_dataset(folder, encode("wiki.txt"), encode("wiki.txt"), streams=streams, objective="span_corruption",
                         questions={k: f"../finetune/{v}" for k, v in files.items()}, **extra, **common)
    if rules:
        print(f"augmentation: {len(copies):,} rewritten paragraphs ({', '.join(rules)}; {args.copies} of each), "
              f"{meta['aug_tokens']:,} characters")
    elif os.path.exists(os.path.join(folder, "aug.bin")):
        os.remove(os.path.join(folder, "aug.bin"))  # a former prepare's rewrites; the new meta.json has no aug_tokens
    print(f"pretrain: {sum(1 for line in wiki.split(chr(10)) if line):,} documents, {len(wiki):,} characters; "
          f"{len(train_q):,} questions to mix in")

    val_q = holdout if args.holdout else dev_q
    folder = os.path.join(args.out_dir, "finetune")
    os.makedirs(folder, exist_ok=True)
    if args.holdout:
        with open(os.path.join(folder, "holdout.tsv"), "w", encoding="utf-8") as f:
            f.writelines(q + "\n" for q in holdout)
    for name in ("birth_dev.tsv", "birth_test_inputs.tsv"):
        with open(os.path.join(folder, name), "w", encoding="utf-8") as f:
            f.write(texts[name])
    write_dataset(folder, encode_lines(train_q), encode_lines(val_q), objective="qa", questions=files,
                  holdout=args.holdout, **common)
    n_test = sum(1 for line in texts["birth_test_inputs.tsv"].split("\n") if line)
    print(f"finetune: {len(train_q):,} train / {len(val_q):,} val ({'holdout' if args.holdout else 'dev'}) "
          f"questions; dev {len(dev_q):,}, test inputs {n_test:,}")


if __name__ == "__main__":
    main()
