"""
How far quantized weights change what a model writes: fp32 and each weight format of quantize.py
continue the same prompt greedily (temperature 0, KV cache, as sample.py), and the table gives the
share of positions where the two texts have the same token, and where they first differ. Once they
differ, each goes its own way, so the share counts how long they agree as much as how often.

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
def agreement(model, prompt, tokens, fmt):
    """(share of the tokens that equal fp32's at the same position, the first position that
    differs or None) of fmt's greedy continuation of prompt (1, T) against fp32's."""
    ref = model.generate(prompt, tokens, temperature=0.0)[0, prompt.size(1):]  # (tokens,)
    got = quantize_model(copy.deepcopy(model), fmt).generate(prompt, tokens, temperature=0.0)[0, prompt.size(1):]
    same = got == ref
    return same.float().mean().item(), None if same.all() else int((~same).nonzero()[0])


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
    print("| weights | tokens the same as fp32's | first difference at token |\n|---|---|---|")
    for fmt in formats:
        share, first = agreement(model, prompt, args.tokens, fmt)
        print(f"| {fmt} | {share:.1%} | {'none' if first is None else first} |", flush=True)


if __name__ == "__main__":
    main()
