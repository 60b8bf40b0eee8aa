"""
How well a rotary model predicts past its block_size with the rolling KV cache, against reading
the window afresh: the loss per token on val.bin text, teacher-forced, beyond the first block.

    python bench/rolling_cache.py --out_dir=out-speedrun-shakespeare-char-cpu --tokens=2048

Three ways to give the model the context of token t > block_size:
- window: recompute the last block_size tokens from scratch (positions 0..block_size-1), which is
  what sample.py --use_cache=False does for a rotary model, and the model's training condition;
- rolling: the cache after one-token steps from the start (sliding-window attention at every
  layer; older keys carry context from before the window), what sample.py does by default;
- half-window re-prefill: every block_size // 2 tokens the cache restarts from the last
  block_size // 2 tokens, what learned-position models do (and rotary ones did before).
It prints each one's mean loss over the same tokens and seconds. fp32, on the CPU.
"""

import argparse
import math
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from checkpoint import load_model  # noqa: E402
from data.common import dataset_dir, load_meta, open_tokens  # noqa: E402
from model import KVCache  # noqa: E402


def nll(logits, target):
    return F.cross_entropy(logits.float(), target, reduction="sum").item()


@torch.no_grad()
def window(model, ids, start):
    block = model.config.block_size
    return sum(nll(model(ids[None, t + 1 - block:t + 1])[0][0, -1:], ids[t + 1:t + 2])
               for t in range(start, len(ids) - 1))


@torch.no_grad()
def rolling(model, ids, start):
    cache = KVCache(model.config.n_layer, model.config.block_size, rolling=True)
    total = 0.0
    for t in range(len(ids) - 1):
        logits = model(ids[None, t:t + 1], cache=cache)[0][0]
        if t >= start:
            total += nll(logits, ids[t + 1:t + 2])
    return total


@torch.no_grad()
def half_window(model, ids, start):
    block = model.config.block_size
    keep = block // 2
    cache = KVCache(model.config.n_layer, block)
    total, n = 0.0, 0  # n: tokens in the cache's window
    for t in range(len(ids) - 1):
        if n == block:  # slide: restart from the last keep tokens, t-keep..t-1
            cache.reset()
            model(ids[None, t - keep:t], cache=cache)
            n = keep
        logits = model(ids[None, t:t + 1], cache=cache)[0][0]
        n += 1
        if t >= start:
            total += nll(logits, ids[t + 1:t + 2])
    return total


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out_dir", required=True, help="a rotary model's run folder (ckpt.pt)")
    ap.add_argument("--data_dir", default="", help="the prepared dataset (default: the run's)")
    ap.add_argument("--tokens", type=int, default=2048, help="val tokens to read, from the start of val.bin")
    args = ap.parse_args()
    model, _, run = load_model("resume", args.out_dir, args.data_dir)
    model.eval()
    if not model.config.use_rope:
        sys.exit("error: the rolling cache is for rotary models (use_rope=True); this one has learned positions")
    ddir = dataset_dir(run["config"].get("dataset", ""), args.data_dir)
    ids = torch.from_numpy(open_tokens(ddir, "val", load_meta(ddir))[:args.tokens].astype(np.int64))
    start = model.config.block_size  # score tokens whose context is longer than the block
    n = len(ids) - 1 - start
    print(f"{args.out_dir}: {model.config.n_layer} layers, block_size {model.config.block_size}; "
          f"{n} val tokens scored, after the first {start}")
    print("| context | mean loss | seconds |\n|---|---|---|")
    for name, fn in (("window, recomputed", window), ("rolling cache", rolling),
                     ("half-window re-prefill", half_window)):
        t0 = time.perf_counter()
        loss = fn(model, ids, start) / n
        print(f"| {name} | {loss:.4f} | {time.perf_counter() - t0:.1f} |", flush=True)
    print(f"(mean loss in nats per token; e^loss is the perplexity; {math.log(2):.4f} nats = 1 bit)")


if __name__ == "__main__":
    main()
