"""
How far quantized weights change what a model writes: fp32 continues a prompt greedily, and each
weight format of quantize.py is compared with it two ways.
- Same text: over fp32's continuation, the share of tokens where the format's greedy choice (its
  argmax, given the text before the token) is fp32's, both reading the same windows of the text
  (each window predicts block_size // 2 tokens with at least that much context).
- Its own text: the format continues the prompt greedily itself (KV cache, as sample.py); the
  first token where its text differs from fp32's. After it the two texts go separate ways.

    python bench/greedy_agreement.py --out_dir=out-shakespeare-char-cpu --tokens=500
    python bench/greedy_agreement.py --init_from=gpt2 --start="The meaning of life is" --tokens=500

On the CPU, activations in fp32 (int8: bf16 into the weight kernel, as sample.py); the formats are
those this CPU runs (quantize.usable_formats), or --quantize=int8.
"""

import argparse
import copy
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from checkpoint import load_model  # noqa: E402
from quantize import quantize_error, quantize_model, usable_formats  # noqa: E402


@torch.no_grad()
def greedy_choices(model, ids, start):
    """model's argmax for each token of ids (1, N) from index start on, given the tokens before it:
    windows of at most block_size tokens, each predicting the next block_size // 2. (N - start,)"""
    block, n = model.config.block_size, ids.size(1)
    step = max(1, block // 2)
    choices = []
    for pos in range(start, n, step):
        end = min(pos + step, n)  # predict ids[pos:end]
        first = max(0, end - 1 - block)  # the window reads ids[first:end - 1]
        logits, _ = model(ids[:, first:end - 1])  # (1, end - 1 - first, V)
        choices.append(logits[0, pos - first - 1:].argmax(dim=-1))
    return torch.cat(choices)


@torch.no_grad()
def agreement(model, prompt, tokens, fmt):
    """fmt against fp32 after prompt (1, T): (the share of fp32's greedy continuation of tokens tokens
    where fmt's greedy choice, reading the same text, is fp32's; the first token where fmt's own
    greedy continuation differs from fp32's, or None)."""
    quantized = quantize_model(copy.deepcopy(model), fmt)
    T = prompt.size(1)
    ref = model.generate(prompt, tokens, temperature=0.0)  # (1, T + tokens)
    share = (greedy_choices(quantized, ref, T) == greedy_choices(model, ref, T)).float().mean().item()
    differs = quantized.generate(prompt, tokens, temperature=0.0)[0, T:] != ref[0, T:]
    return share, int(differs.nonzero()[0]) if differs.any() else None


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--init_from", default="resume", help="'resume' (--out_dir), 'gpt2'..., or 'hf:PATH', as sample.py")
    ap.add_argument("--out_dir", default="out", help="the run whose ckpt.pt to read")
    ap.add_argument("--data_dir", default="", help="where the tokenizer's meta.json is, as sample.py")
    ap.add_argument("--start", default="\n", help="the prompt")
    ap.add_argument("--tokens", type=int, default=500, help="greedy tokens after the prompt")
    ap.add_argument("--quantize", default="auto", help="formats to compare with fp32, comma-separated; auto: all")
    args = ap.parse_args(argv)
    formats = [f for f in usable_formats("cpu") if f != "none"] if args.quantize == "auto" else args.quantize.split(",")
    if error := next(filter(None, (quantize_error(f, "cpu") for f in formats)), None):
        sys.exit(f"error: {error}")
    try:
        model, tok, _ = load_model(args.init_from, args.out_dir, args.data_dir)
    except (OSError, RuntimeError, ValueError) as e:
        sys.exit(f"error: {e}")
    model.eval()
    prompt = torch.tensor([tok.encode(args.start)], dtype=torch.long)  # (1, T)
    print(f"{args.init_from if args.init_from != 'resume' else args.out_dir}: {args.tokens} greedy tokens after "
          f"{args.start!r}, each format against fp32")
    print("| weights | same text: greedy choices as fp32's | its own text: first token unlike fp32's |\n|---|---|---|")
    for fmt in formats:
        share, first = agreement(model, prompt, args.tokens, fmt)
        print(f"| {fmt} | {share:.1%} | {'none' if first is None else first} |", flush=True)


if __name__ == "__main__":
    main()
