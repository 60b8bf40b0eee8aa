"""
Training examples for the knowledge probe (CS224N assignment 5), built fresh at every draw.

train.py calls this module because the prepared meta.json names it ("batch_module"):
load_split(data_dir, split, meta, block_size) returns an object whose example(rng) gives one
(x, y) pair of int64 arrays of length block_size, y = -1 where no loss is taken. train.py
draws the seeds, stacks the examples and trims the all-ignored columns at the end.

Two objectives, chosen by meta["objective"]:
  span_corruption   wiki.txt, one person per line. Truncate the document to a random length,
                    hide a random span and learn to write it back after the rest:
                        prefix ⁇ suffix ⁇ span □□□...
  qa                "Where was X born?<TAB>Lebanon" lines, learnt as
                        question ⁇ answer ⁇ □□□...   with the loss on "answer ⁇" only
"""

import os

import numpy as np

from data.common import open_tokens

PAD, MASK = 0, 1  # ids of "□" and "⁇": prepare.py puts them first in the vocabulary
PAD_CHAR, MASK_CHAR = "□", "⁇"


def split_on(ids, sep):
    """1-D ids -> the pieces between occurrences of sep, like str.split (empty pieces dropped)."""
    cuts = np.flatnonzero(ids == sep)
    starts, ends = np.concatenate([[0], cuts + 1]), np.concatenate([cuts, [len(ids)]])
    return [ids[s:e] for s, e in zip(starts, ends) if e > s]


def pad_pair(seq, block_size):
    """seq (list or 1-D ids, at most block_size + 1 long) -> x, y of length block_size,
    y is x shifted by one, PAD targets are -1 (ignored by the loss)."""
    if len(seq) > block_size + 1:
        raise ValueError(f"an example of {len(seq)} tokens does not fit block_size={block_size}")
    full = np.full(block_size + 1, PAD, dtype=np.int64)
    full[:len(seq)] = seq
    x, y = full[:-1].copy(), full[1:].copy()
    y[y == PAD] = -1
    return x, y


def corrupt(doc, rng, block_size):
    """One span corruption of doc -> (prefix, span, suffix), whose concatenation is the
    document truncated to a random length in [4, int(block_size * 7/8)] (or the whole
    document when it is shorter). The span holds between 1 and L/2 - 1 characters of the
    L kept, uniformly, so a quarter of L on average (a quarter character less for odd L)."""
    keep = rng.integers(4, int(block_size * 7 / 8), endpoint=True)
    doc = doc[:keep]
    n = len(doc)
    span = rng.integers(1, max(1, n // 2 - 1), endpoint=True)
    start = rng.integers(0, n - span, endpoint=True)
    return doc[:start], doc[start:start + span], doc[start + span:]


def span_corruption_example(doc, rng, block_size):
    prefix, span, suffix = corrupt(doc, rng, block_size)
    return pad_pair(np.concatenate([prefix, [MASK], suffix, [MASK], span]), block_size)


def qa_example(question, answer, block_size):
    """question ⁇ answer ⁇ padded; the targets before the first ⁇ is read are ignored, so
    the loss covers the answer and the closing ⁇ only."""
    x, y = pad_pair(np.concatenate([question, [MASK], answer, [MASK]]), block_size)
    y[:len(question)] = -1
    return x, y


class SpanCorruption:
    def __init__(self, docs, block_size):
        self.docs, self.block_size = docs, block_size

    def example(self, rng):
        return span_corruption_example(self.docs[rng.integers(len(self.docs))], rng, self.block_size)


class QA:
    def __init__(self, pairs, block_size):
        self.pairs, self.block_size = pairs, block_size
        longest = max(len(q) + len(a) + 2 for q, a in pairs)
        if longest > block_size + 1:
            raise ValueError(f"the longest question and answer take {longest} tokens, more than "
                             f"block_size + 1 = {block_size + 1}; raise --block_size")

    def example(self, rng):
        return qa_example(*self.pairs[rng.integers(len(self.pairs))], self.block_size)


def load_split(data_dir, split, meta, block_size):
    ids = np.asarray(open_tokens(data_dir, split, meta), dtype=np.int64)
    lines = split_on(ids, meta["newline"])
    if meta["objective"] == "span_corruption":
        if block_size < 8:
            raise ValueError(f"span corruption needs block_size >= 8 (got {block_size})")
        return SpanCorruption([d for d in lines if len(d) >= 4], block_size)
    if meta["objective"] == "qa":
        pairs = []
        for line in lines:
            tab = np.flatnonzero(line == meta["tab"])
            if len(tab) != 1:
                raise ValueError(f"a line of {os.path.join(data_dir, split)}.bin is not 'question<TAB>answer'")
            pairs.append((line[:tab[0]], line[tab[0] + 1:]))
        return QA(pairs, block_size)
    raise ValueError(f"unknown objective {meta['objective']!r} in {data_dir}/meta.json")
