"""
What every task does under torchrun, where each rank measures its share of the examples or
windows: a progress bar on rank 0 only, and the counts summed over the ranks.
"""

import os

import torch
from tqdm import tqdm


def progress(what, total, unit):
    """A tqdm bar for a long pass, to be updated by hand: on rank 0 only, and only when stderr is a
    terminal (tqdm's disable=None), so a log or a pipe gets no bar."""
    return tqdm(total=total, desc=what, unit=unit, leave=False,
                disable=None if int(os.environ.get("RANK", 0)) == 0 else True)


def all_reduce_sum(values, device, world_size):
    """A list of numbers summed over the ranks (unchanged with one process)."""
    t = torch.tensor(values, dtype=torch.float64, device=device)
    if world_size > 1:
        torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.SUM)
    return t.tolist()
