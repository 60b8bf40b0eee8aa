"""
Training examples for the knowledge probe (CS224N assignment 5), built fresh at every draw.

data/loader.py imports this module because the prepared meta.json names it ("batch_module"):
load_split(data_dir, split, meta, block_size, length_bands, qa_share, random_windows, aug_share)
returns an object whose examples(seeds) gives one (x, y) pair of int64 arrays of length block_size
per seed, y = -1 where no loss is taken. The loader draws the seeds, stacks the examples and trims the
all-ignored columns at the end, so a batch costs what its longest example costs.

length_bands > 1 makes the batches cheaper without changing what is learnt on average: the
examples' lengths are cut into that many bands, each batch draws one band (with probability
its share of the examples) and then its examples from inside it. Every example is exactly as
likely as without bands; only examples of like length now share a batch, so less of it is
padding (the course model's span-corruption steps at batch 32 took 0.4 s instead of 0.7 s).

Two objectives, chosen by meta["objective"]:
  span_corruption   wiki.txt, one person per line. Truncate the document to a random length,
                    hide a random span and learn to write it back after the rest:
                        prefix ⁇ suffix ⁇ span □□□...
  qa                "Where was X born?<TAB>Lebanon" lines, learnt as
                        question ⁇ answer ⁇ □□□...   with the loss on "answer ⁇" only

Two options of span corruption, both off by default (the course's protocol), set by train.py:
  qa_share          mixed training (Allen-Zhu & Li 2023): the train split's examples include
                    the training people's questions (qa.bin, the finetune's train split), in
                    this share of the tokens; val stays span corruption alone
  random_windows    the kept stretch of a document starts anywhere in it, not at its beginning
  aug_share         knowledge augmentation: this share of the train split's documents is drawn
                    from rewritten copies of the paragraphs (aug.bin, prepare.py --augment)
"""

import os
import re

import numpy as np

from data.common import open_tokens, prepare_hint

PAD, MASK = 0, 1  # ids of "□" and "⁇": prepare.py puts them first in the vocabulary
PAD_CHAR, MASK_CHAR = "□", "⁇"
PERSON = re.compile(r"Where was (.+) born\?")  # the course's one question, about one person


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


def truncation_range(block_size):
    return 4, int(block_size * 7 / 8)


def corrupt(doc, rng, block_size, keep_range=None, anywhere=False):
    """One span corruption of doc -> (prefix, span, suffix), whose concatenation is the
    document truncated to a random length in [4, int(block_size * 7/8)] (or the whole
    document when it is shorter); keep_range=(lo, hi) narrows that to one length band.
    anywhere=True keeps a stretch of that length starting anywhere in the document (uniformly),
    so that what a paragraph says past its first 7/8 of a block is seen too; it draws one more
    number, and only then. The span holds between 1 and L/2 - 1 characters of the L kept,
    uniformly, so a quarter of L on average (a quarter character less for odd L)."""
    lo, hi = keep_range or truncation_range(block_size)
    keep = rng.integers(lo, hi, endpoint=True)
    first = rng.integers(0, len(doc) - keep, endpoint=True) if anywhere and len(doc) > keep else 0
    doc = doc[first:first + keep]
    n = len(doc)
    span = rng.integers(1, max(1, n // 2 - 1), endpoint=True)
    start = rng.integers(0, n - span, endpoint=True)
    return doc[:start], doc[start:start + span], doc[start + span:]


def span_corruption_example(doc, rng, block_size, keep_range=None, anywhere=False):
    prefix, span, suffix = corrupt(doc, rng, block_size, keep_range, anywhere)
    return pad_pair(np.concatenate([prefix, [MASK], suffix, [MASK], span]), block_size)


def qa_example(question, answer, block_size):
    """question ⁇ answer ⁇ padded; the targets before the first ⁇ is read are ignored, so
    the loss covers the answer and the closing ⁇ only."""
    x, y = pad_pair(np.concatenate([question, [MASK], answer, [MASK]]), block_size)
    y[:len(question)] = -1
    return x, y


def pick_band(rng, bands):
    """bands: a list of 1-D arrays (the choices in each band) -> one band, drawn with
    probability its share of all the choices, so a uniform draw inside it keeps every
    choice at 1/total."""
    sizes = np.array([len(b) for b in bands], dtype=np.float64)
    return bands[rng.choice(len(bands), p=sizes / sizes.sum())]


class SpanCorruption:
    """Bands of the truncation length: a band's examples are at most its top + 2 tokens long.
    With rewrites (knowledge augmentation, augment.py) a document is one of them with probability
    aug_share, else one of docs."""

    def __init__(self, docs, block_size, length_bands=1, anywhere=False, rewrites=(), aug_share=0.0):
        self.docs, self.block_size, self.anywhere = docs, block_size, anywhere
        self.rewrites, self.aug_share = rewrites, aug_share
        lo, hi = truncation_range(block_size)
        self.bands = np.array_split(np.arange(lo, hi + 1), max(1, length_bands))

    def example(self, rng, band):
        """One example of a random document, its truncation length drawn from band. Augmentation
        draws one more number, and only when it is on, so a run without it is what it was."""
        docs = self.rewrites if self.aug_share and rng.random() < self.aug_share else self.docs
        doc = docs[rng.integers(len(docs))]
        return span_corruption_example(doc, rng, self.block_size, (band[0], band[-1]), self.anywhere)

    def examples(self, seeds):
        rngs = [np.random.default_rng(s) for s in seeds]
        band = pick_band(rngs[0], self.bands)  # the first example's generator also picks the band
        return [self.example(r, band) for r in rngs]

    def mean_length(self):
        """An example's expected length in tokens: the kept characters (the truncation length,
        uniform over all bands together, or the document's length when shorter) and two masks."""
        lo, hi = truncation_range(self.block_size)

        def mean(docs):
            lengths = np.array([len(d) for d in docs])
            return np.minimum(np.arange(lo, hi + 1)[None, :], lengths[:, None]).mean()  # (docs, lengths)
        kept = mean(self.docs) if not self.aug_share else \
            (1 - self.aug_share) * mean(self.docs) + self.aug_share * mean(self.rewrites)
        return kept + 2


class QA:
    """Bands of the pairs sorted by length (finetuning: 2,000 questions)."""

    def __init__(self, pairs, block_size, length_bands=1):
        self.pairs, self.block_size = pairs, block_size
        longest = max(len(q) + len(a) + 2 for q, a in pairs)
        if longest > block_size + 1:
            raise ValueError(f"the longest question and answer take {longest} tokens, more than "
                             f"block_size + 1 = {block_size + 1}; raise --block_size")
        by_length = np.argsort([len(q) + len(a) for q, a in pairs], kind="stable")
        self.bands = np.array_split(by_length, max(1, min(length_bands, len(pairs))))

    def examples(self, seeds):
        """A batch of distinct pairs (while the band holds enough): the first seed picks the
        band and a random order of it; each place in the batch is still uniform over the band."""
        rng = np.random.default_rng(seeds[0])
        band = pick_band(rng, self.bands)
        order = band[rng.permutation(len(band))]
        return [qa_example(*self.pairs[order[i % len(order)]], self.block_size) for i in range(len(seeds))]


class Mixed:
    """Mixed training (Allen-Zhu & Li 2023, "Physics of Language Models: Part 3.1"): the training
    people's questions among the span-corruption examples, from the first step, so that the model
    learns to answer while it stores the documents. share is the questions' share of the tokens
    (docs/birthplace.md says why tokens): each example is a question with the probability
    p_question that gives that share on average, from the mean lengths of the two kinds (a
    question is shorter than most span-corruption examples, so p_question is above share there).
    Whether an example is a question, and which, comes from its own seed; the batch's length band
    (for its span-corruption examples) from a generator of its own seeded by the first seed, so
    an example depends on its own seed and the band alone. A question is learnt as in the finetune,
    with the loss on its answer, so it weighs less in a batch's mean loss than its tokens."""

    def __init__(self, span, qa, share):
        self.span, self.pairs = span, qa.pairs
        q_len = np.mean([len(q) + len(a) + 2 for q, a in self.pairs])  # question ⁇ answer ⁇
        s_len = span.mean_length()
        # the p that solves q_len·p / (q_len·p + s_len·(1 - p)) = share
        self.p_question = share * s_len / (share * s_len + (1 - share) * q_len)

    def examples(self, seeds):
        rngs = [np.random.default_rng(s) for s in seeds]
        asks = [r.random() < self.p_question for r in rngs]
        band = pick_band(np.random.default_rng([seeds[0], 1]), self.span.bands)
        return [qa_example(*self.pairs[r.integers(len(self.pairs))], self.span.block_size) if ask
                else self.span.example(r, band) for r, ask in zip(rngs, asks)]


def read_pairs(data_dir, split, meta):
    """A split of "question<TAB>answer" lines -> [(question ids, answer ids)]."""
    pairs = []
    for line in split_on(np.asarray(open_tokens(data_dir, split, meta), dtype=np.int64), meta["newline"]):
        tab = np.flatnonzero(line == meta["tab"])
        if len(tab) != 1:
            raise ValueError(f"a line of {os.path.join(data_dir, split)}.bin is not 'question<TAB>answer'")
        pairs.append((line[:tab[0]], line[tab[0] + 1:]))
    return pairs


def documents(data_dir, split, meta):
    """A split of one document per line -> the documents long enough to corrupt (4 tokens)."""
    lines = split_on(np.asarray(open_tokens(data_dir, split, meta), dtype=np.int64), meta["newline"])
    return [d for d in lines if len(d) >= 4]


def load_split(data_dir, split, meta, block_size, length_bands=1, qa_share=0.0, random_windows=False,
               aug_share=0.0):
    if not 0 <= qa_share <= 1:
        raise ValueError(f"qa_share={qa_share} is not a share of the tokens; give one from 0 to 1")
    if not 0 <= aug_share <= 1:
        raise ValueError(f"aug_share={aug_share} is not a share of the documents drawn; give one from 0 to 1")
    if meta["objective"] == "span_corruption":
        if block_size < 8:
            raise ValueError(f"span corruption needs block_size >= 8 (got {block_size})")
        aug_share = aug_share if split == "train" else 0.0
        if aug_share and "aug_tokens" not in meta:
            raise ValueError(f"{data_dir} holds no rewritten paragraphs (aug.bin, for --aug_share); prepare it with "
                             f"--augment, e.g. python data/birthplace/prepare.py --augment=fullname,shuffle")
        # val stays the documents alone, each from its beginning: its loss compares with a plain run's
        span = SpanCorruption(documents(data_dir, split, meta), block_size, length_bands,
                              random_windows and split == "train",
                              documents(data_dir, "aug", meta) if aug_share else (), aug_share)
        if split != "train" or not qa_share:
            return span
        if "qa_tokens" not in meta:
            raise ValueError(f"{data_dir} holds no questions to mix in (qa.bin, for --qa_share); {prepare_hint(data_dir)}")
        return Mixed(span, QA(read_pairs(data_dir, "qa", meta), block_size), qa_share)
    if meta["objective"] == "qa":
        if qa_share or random_windows or aug_share:
            raise ValueError(f"--qa_share, --random_windows and --aug_share change span-corruption pretraining, and "
                             f"{data_dir} is a finetuning dataset; drop them")
        return QA(read_pairs(data_dir, split, meta), block_size, length_bands)
    raise ValueError(f"unknown objective {meta['objective']!r} in {data_dir}/meta.json")
