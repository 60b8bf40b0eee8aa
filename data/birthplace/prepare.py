"""
The knowledge probe of Stanford CS224N (assignment 5): can a small GPT store facts while
pretraining on Wikipedia-style text and recall them after finetuning on "Where was X born?".

    python data/birthplace/prepare.py                 # the course files placed in data/birthplace/
    python data/birthplace/prepare.py --input=DIR     # or a folder holding them

DIR holds the four files of the assignment's handout (the course materials, a5.zip):
wiki.txt (one paragraph about one person per line), birth_places_train.tsv and
birth_dev.tsv ("question<TAB>answer" lines) and birth_test_inputs.tsv (questions only).

One character vocabulary covers all four files, after two symbols of its own: PAD "□" (id 0)
and MASK "⁇" (id 1). Two prepared datasets come out, each a token stream with a meta.json
that names data/birthplace/batches.py, which turns lines into training examples:
    data/birthplace/pretrain/   train.bin = val.bin = wiki.txt   (span corruption; val is the
                                same documents, since pretraining is about storing them)
    data/birthplace/finetune/   train.bin = birth_places_train.tsv, val.bin = birth_dev.tsv
On the course files:
    vocab size: 257 (255 characters + PAD + MASK)
    pretrain: 2,937 documents, 418,352 characters
    finetune: 2,000 train / 500 val questions
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
from data.birthplace.batches import MASK_CHAR, PAD_CHAR  # noqa: E402
from data.common import write_dataset  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
FILES = ("wiki.txt", "birth_places_train.tsv", "birth_dev.tsv", "birth_test_inputs.tsv")


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


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--input", default=HERE, help="folder with the four course files")
    ap.add_argument("--out_dir", default=HERE, help="writes pretrain/ and finetune/ here")
    args = ap.parse_args(argv)

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

    wiki = texts["wiki.txt"]
    write_dataset(os.path.join(args.out_dir, "pretrain"), encode("wiki.txt"), encode("wiki.txt"),
                  objective="span_corruption", **common)
    print(f"pretrain: {sum(1 for line in wiki.split(chr(10)) if line):,} documents, {len(wiki):,} characters")

    def questions(name):
        lines = [line for line in texts[name].split("\n") if line]
        bad = [line for line in lines if line.count("\t") != 1]
        if bad:
            sys.exit(f"error: {name} has lines that are not 'question<TAB>answer', e.g. {bad[0]!r}")
        return len(lines)

    n_train, n_val = questions("birth_places_train.tsv"), questions("birth_dev.tsv")
    write_dataset(os.path.join(args.out_dir, "finetune"), encode("birth_places_train.tsv"),
                  encode("birth_dev.tsv"), objective="qa", **common)
    print(f"finetune: {n_train:,} train / {n_val:,} val questions")


if __name__ == "__main__":
    main()
