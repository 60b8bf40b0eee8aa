"""
HellaSwag (Zellers et al., 2019): which of 4 endings continues a sentence, on its 10,042
validation examples. Scored completion style, as in llm.c and build-nanogpt: each ending, with a
space in front, follows the context; the 4 rows go through the model in one forward and only the
ending's tokens are scored. acc picks the ending with the lowest summed loss, acc_norm the lowest
mean loss per ending token; chance is 0.25, GPT-2 124M about 0.29-0.30 acc_norm. The file is
downloaded once, pinned to a commit and checked against its git blob id. Details:
docs/evaluation.md#hellaswag.
"""

import json
import os

import numpy as np

from data.common import dataset_dir
from data.fetch import download
from evals.ranks import all_reduce_sum, progress
from evals.scoring import score_continuations

# HellaSwag's validation file at a pinned commit of its repository (the version of 2019-05-29), and
# the git blob id that the repository's tree gives it there (data.fetch.checksum_of)
HELLASWAG_URL = ("https://raw.githubusercontent.com/rowanz/hellaswag/"
                 "a29ff8e9a04bba4bd6588223785ce105328adc57/data/hellaswag_val.jsonl")
HELLASWAG_CHECKSUM = "git-blob:0f5ee25d72216f12317d5d8a7b92deafa423d81e"


def read_hellaswag(path):
    """HellaSwag's JSON lines as published: ind, activity_label, ctx_a, ctx_b, ctx, endings (4),
    source_id, split, split_type, label (the right ending's index). Returns the examples."""
    with open(path, encoding="utf-8-sig") as f:
        examples = [json.loads(line) for line in f if line.strip()]
    for ex in examples:
        if not {"ctx", "endings", "label"} <= ex.keys() or len(ex["endings"]) != 4:
            raise ValueError(f"{path} is not HellaSwag: each line needs ctx, 4 endings and a label "
                             f"(example ind={ex.get('ind')})")
    return examples


def hellaswag_counts(model, tok, examples, rank=0, world_size=1):
    """[correct by summed loss, correct by mean loss per ending token, examples] over this rank's
    share of the examples (every world_size-th), all-reduced over the ranks. Each example is one
    forward of 4 rows: the context followed by each ending (" " + ending, as the text reads)."""
    counts = [0, 0, 0]
    mine = examples[rank::world_size]
    with progress("hellaswag", len(mine), "examples") as bar:
        for ex in mine:
            ctx = tok.encode(ex["ctx"])
            ends = [tok.encode(" " + e) for e in ex["endings"]]
            logps = [lp for lp, _ in score_continuations(model, [(ctx, e) for e in ends])]
            label = int(ex["label"])
            counts[0] += int(np.argmax(logps)) == label  # the lowest summed loss
            counts[1] += int(np.argmax([lp / len(e) for lp, e in zip(logps, ends)])) == label  # lowest mean loss
            counts[2] += 1
            bar.update(1)
    return all_reduce_sum(counts, next(model.parameters()).device, world_size)


def hellaswag_file(path=""):
    """path (evaluate.py's --input) when given, else hellaswag_val.jsonl downloaded (once) to data/hellaswag/."""
    if path:
        return path
    dest = os.path.join(dataset_dir("hellaswag"), "hellaswag_val.jsonl")
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    return download(HELLASWAG_URL, dest, HELLASWAG_CHECKSUM)
