"""
Batches for training and evaluation, from a prepared dataset folder (see data/common.py).

A split is read in one of two ways, chosen once by open_batches():
  TokenWindows  random block_size windows of the split's token stream (every text corpus);
  Examples      whole examples built by the dataset's own Python module, named in its
                meta.json as "batch_module" (the birthplace task: data/birthplace/batches.py).

Both answer the same two calls, which is all the training loop and estimate_loss use:
  draw(rng, n_rows, batch_size) -> an array of n_rows rows, one row per micro-batch
  get(row)                      -> X, Y, int64 tensors (B, T) on the device

A batch_module provides load_split(data_dir, split, meta, block_size, length_bands, **options)
(options: train.py keys of its own, such as the birthplace's qa_share), which returns an object
whose examples(seeds) gives one (x, y) pair of int64 arrays of length block_size per seed
(y = -1 where no loss is taken). Only modules inside this repository's data/ package are
imported, so a downloaded dataset folder cannot make train.py run other code.
"""

import importlib
import importlib.util
import os

import numpy as np
import torch

from data.common import DATA_ROOT, check_token_ids, open_tokens


def draw_batch_starts(rng, n_tokens, block_size, n_rows, batch_size):
    """(n_rows, batch_size) random window starts. Every rank draws the same array from the
    same generator and takes its own rows, so 2 ranks with k micro-steps read exactly what
    1 rank with 2k micro-steps reads."""
    if n_tokens <= block_size:
        raise ValueError(f"the split holds {n_tokens} tokens, not more than block_size={block_size}; "
                         f"lower --block_size or prepare more data")
    return rng.integers(0, n_tokens - block_size, size=(n_rows, batch_size))


def get_batch(data, starts, block_size, device, vocab_size=None, path=""):
    """data: 1-D token ids (memmap); starts: (B,) -> x, y (B, T) int64, y is x shifted by one.
    With vocab_size, every id is checked on the CPU first (check_token_ids; path names the file)."""
    windows = np.stack([data[i:i + block_size + 1] for i in starts])  # (B, T+1), the file's dtype
    if vocab_size is not None:
        check_token_ids(windows, vocab_size, path)
    x = torch.from_numpy(windows[:, :-1].astype(np.int64))  # (B, T), contiguous copies
    y = torch.from_numpy(windows[:, 1:].astype(np.int64))
    if device.startswith("cuda"):  # pinned memory lets the copy overlap with compute
        return x.pin_memory().to(device, non_blocking=True), y.pin_memory().to(device, non_blocking=True)
    return x.to(device), y.to(device)


def trim_ignored(x, y, ignore_index=-1):
    """x, y (B, T) -> (B, T') without the trailing columns whose targets are all ignored
    (padding). Exact: attention is causal, so earlier positions never see the cut ones,
    and ignored targets add nothing to the loss."""
    used = np.flatnonzero((y != ignore_index).any(axis=0))
    t = int(used[-1]) + 1 if len(used) else 1
    return x[:, :t], y[:, :t]


class TokenWindows:
    """The default batches: random block_size windows of a split's token stream. With vocab_size,
    each batch's ids are checked against it before they reach the device."""

    def __init__(self, tokens, block_size, device, vocab_size=None):
        self.tokens, self.block_size, self.device, self.vocab_size = tokens, block_size, device, vocab_size

    def __len__(self):
        return len(self.tokens)

    def draw(self, rng, n_rows, batch_size):
        return draw_batch_starts(rng, len(self.tokens), self.block_size, n_rows, batch_size)

    def get(self, starts):
        return get_batch(self.tokens, starts, self.block_size, self.device, self.vocab_size,
                         getattr(self.tokens, "filename", "") or "")


class Examples:
    """Batches of whole examples built by a batch_module (span corruption, for one, must
    corrupt afresh at every draw): source.examples(seeds) gives one (x, y) pair per seed.
    Every example gets a seed from the run's batch generator, so a resume repeats them and
    DDP ranks take distinct rows."""

    def __init__(self, source, n_tokens, device, vocab_size=None, path=""):
        self.source, self.n_tokens, self.device, self.vocab_size, self.path = source, n_tokens, device, vocab_size, path

    def __len__(self):
        return self.n_tokens

    def draw(self, rng, n_rows, batch_size):
        return rng.integers(0, 2**63 - 1, size=(n_rows, batch_size))

    def get(self, seeds):
        x, y = zip(*self.source.examples(seeds))
        x, y = trim_ignored(np.stack(x), np.stack(y))  # (B, T) each, T <= block_size
        if self.vocab_size is not None:
            check_token_ids(x, self.vocab_size, self.path)
        x, y = torch.from_numpy(np.ascontiguousarray(x)), torch.from_numpy(np.ascontiguousarray(y))
        return x.to(self.device), y.to(self.device)


def import_batch_module(name):
    """Import a meta.json's "batch_module", which must be a module file inside this repository's
    data/ package: the resolved file is checked, not only the name. Raises ValueError."""
    refuse = f"meta.json names batch_module {name!r}, which is not a module inside {DATA_ROOT}; " \
             f"prepare the dataset again with its data/<name>/prepare.py"
    if not isinstance(name, str) or not name.startswith("data."):
        raise ValueError(refuse)
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        spec = None
    root = os.path.realpath(DATA_ROOT) + os.sep
    if spec is None or not spec.origin or not os.path.realpath(spec.origin).startswith(root):
        raise ValueError(refuse)
    return importlib.import_module(name)


def open_batches(data_dir, split, meta, block_size, device, length_bands=1, **options):
    """The batch source of one split, chosen once: TokenWindows, or Examples when meta names a
    batch_module, whose load_split takes the options (token windows take none but their off
    values). Every batch's ids are checked against meta's vocab_size on the CPU. Raises
    ValueError (a DataError for a damaged folder) when the split cannot fill a block."""
    tokens = open_tokens(data_dir, split, meta)
    vocab = meta["vocab_size"]
    if "batch_module" in meta:
        module = import_batch_module(meta["batch_module"])
        return Examples(module.load_split(data_dir, split, meta, block_size, length_bands, **options), len(tokens),
                        device, vocab, os.path.join(data_dir, f"{split}.bin"))
    if on := [k for k, v in options.items() if v]:
        raise ValueError(f"--{on[0]} needs a dataset of whole examples (a batch_module in meta.json), such as "
                         f"birthplace/pretrain; {data_dir} is a token stream: drop it")
    if len(tokens) <= block_size:
        raise ValueError(f"the {split} split of {data_dir} has {len(tokens)} tokens, not more than "
                         f"block_size={block_size}; lower --block_size")
    return TokenWindows(tokens, block_size, device, vocab)


@torch.no_grad()
def estimate_loss(model, splits, eval_iters, batch_size, ctx, seed=0, rank=0, world_size=1):
    """Mean loss per split (name -> batch source) over eval_iters batches. The batches are the
    same at every call (fixed seed), so evaluations along a run, and across runs, compare like
    with like. Under DDP (world_size > 1; every rank must call this) each rank scores every
    world_size-th batch and the sums are all-reduced, so every rank returns the same numbers and
    takes the same decisions from them (a rank that decided alone from its own last bits could
    enter a checkpoint's collective while the others train on: a hang). The losses stay on the
    device until the end: one wait for it per split, not one per batch."""
    out = {}
    model.eval()
    for split, batches in splits.items():
        rows = batches.draw(np.random.default_rng(seed), eval_iters, batch_size)
        mine = range(rank, eval_iters, world_size)  # this rank's batches
        losses = torch.zeros(len(mine), device=next(model.parameters()).device)
        for i, k in enumerate(mine):
            X, Y = batches.get(rows[k])
            with ctx:
                _, loss = model(X, Y)
            losses[i] = loss.detach().float()
        total = losses.sum()
        if world_size > 1:
            torch.distributed.all_reduce(total, op=torch.distributed.ReduceOp.SUM)
        out[split] = (total / eval_iters).item()  # the mean, as one process computes it
    model.train()
    return out
