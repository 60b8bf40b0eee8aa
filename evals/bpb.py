"""
Bits per byte: one full pass over a split, in consecutive windows of block_size that predict
every token but the first exactly once. The summed loss in nats, over the UTF-8 bytes of the text
the scored tokens decode to, over ln 2, compares models with different tokenizers, which the loss
per token cannot (a GPT-2 token holds about four characters of English); the loss and perplexity
per token come from the same pass. (--task=loss, on random batches, is data/loader.py's
estimate_loss.) Details and figures: docs/evaluation.md#bpb-bits-per-byte.
"""

import math

import numpy as np
import torch
import torch.nn.functional as F

from evals.ranks import all_reduce_sum, progress


@torch.no_grad()
def bits_per_byte(model, tokens, tok, batch_size, ctx, rank=0, world_size=1):
    """One full pass over a token stream (a split's memmap): consecutive windows of block_size
    predict every token but the first exactly once (the last window may be shorter). Returns
    {"loss", "perplexity"} per token and "bpb": the total nats over the UTF-8 bytes of the text the
    scored tokens decode to, over ln 2. Bytes, unlike tokens, mean the same for every tokenizer,
    so a character model and a BPE model compare. Windows are dealt out over the ranks."""
    device = next(model.parameters()).device
    T, n = model.config.block_size, len(tokens) - 1  # n: the tokens that get scored
    windows = [(s, min(T, n - s)) for s in range(0, n, T)][rank::world_size]  # (start, tokens it predicts)
    nats = torch.zeros((), dtype=torch.float64, device=device)
    with progress("bits per byte", len(windows), "windows") as bar:
        for t in sorted({t for _, t in windows}):  # two lengths at most: T and the last window's
            group = [s for s, length in windows if length == t]
            for i in range(0, len(group), batch_size):
                xy = np.stack([tokens[s:s + t + 1].astype(np.int64) for s in group[i:i + batch_size]])  # (B, t + 1)
                xy = torch.from_numpy(xy).to(device)
                with ctx:
                    logits, _ = model(xy[:, :-1])  # (B, t, V)
                nats += F.cross_entropy(logits.float().flatten(0, 1), xy[:, 1:].flatten(), reduction="sum").double()
                bar.update(len(xy))
    nats = all_reduce_sum([nats.item()], device, world_size)[0]
    n_bytes = len(tok.decode(tokens[1:].tolist()).encode("utf-8"))
    return {"loss": nats / n, "perplexity": math.exp(nats / n), "bpb": nats / n_bytes / math.log(2),
            "tokens": n, "bytes": n_bytes}
