"""
What a step of the knowledge probe's pretraining computes, read from its batches alone (no
model): the tokens of a batch once its padding is trimmed, the targets scored, and how often
the training questions come round. docs/birthplace.md's table of arms takes the tokens and the
QA passes of each pretraining from here; a finetune's passes are its iterations x batch / questions.

    python bench/probe_batches.py                                   # the plain CPU recipe
    python bench/probe_batches.py --qa_share=0.05                   # mixed training
    python bench/probe_batches.py --dataset=birthplace_aug/pretrain --aug_share=0.5 --qa_share=0.05

The batches are drawn as train.py draws them (the loader, the same seed), --sample of them, and
the totals scale their means to --iters.
"""

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from data.common import dataset_dir, load_meta  # noqa: E402
from data.loader import open_batches  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dataset", default="birthplace/pretrain", help="a prepared folder under data/")
    ap.add_argument("--data_dir", default="", help="the dataset's folder, if not data/<dataset>")
    ap.add_argument("--batch_size", type=int, default=32, help="examples a step, as the run's")
    ap.add_argument("--block_size", type=int, default=128, help="as the run's")
    ap.add_argument("--length_bands", type=int, default=8, help="as the run's (the CPU config's 8)")
    ap.add_argument("--qa_share", type=float, default=0.0, help="mixed training's share, as the run's")
    ap.add_argument("--aug_share", type=float, default=0.0, help="augmentation's share, as the run's")
    ap.add_argument("--iters", type=int, default=24000, help="the run's iterations, for the totals")
    ap.add_argument("--sample", type=int, default=2000, help="batches drawn")
    ap.add_argument("--seed", type=int, default=1337, help="the batch generator's seed (train.py's --seed)")
    args = ap.parse_args(argv)
    ddir = dataset_dir(args.dataset, args.data_dir)
    meta = load_meta(ddir)
    try:
        batches = open_batches(ddir, "train", meta, args.block_size, "cpu", args.length_bands,
                               qa_share=args.qa_share, aug_share=args.aug_share)
    except ValueError as e:
        sys.exit(f"error: {e}")
    rng = np.random.default_rng(args.seed)
    tokens = scored = questions = 0
    for _ in range(args.sample):
        x, y = batches.get(batches.draw(rng, 1, args.batch_size)[0])  # (B, T), T trimmed to the longest
        tokens += x.numel()
        scored += int((y != -1).sum())
        questions += int((y[:, 0] == -1).sum())  # a question's first targets are ignored, an excerpt's are not
    per = lambda v: v / args.sample  # noqa: E731
    print(f"{args.dataset}, qa_share {args.qa_share}, aug_share {args.aug_share}, batches of {args.batch_size}, "
          f"{args.length_bands} length bands ({args.sample:,} batches drawn)")
    print(f"per step: {per(tokens):.1f} tokens ({per(tokens) / args.batch_size:.1f} a row), {per(scored):.1f} "
          f"targets scored, {per(questions):.2f} questions")
    line = f"in {args.iters:,} iterations: {per(tokens) * args.iters / 1e6:.1f}M tokens"
    if args.qa_share:
        n = len(batches.source.pairs)
        line += f", {per(questions) * args.iters:,.0f} questions = {per(questions) * args.iters / n:.1f} passes over {n:,}"
    print(line)


if __name__ == "__main__":
    main()
