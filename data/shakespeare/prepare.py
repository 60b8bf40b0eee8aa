"""
Tiny Shakespeare with GPT-2's byte-pair encoding (tiktoken 'gpt2', 50257 tokens).

    python data/shakespeare/prepare.py                 # download (checks sha256)
    python data/shakespeare/prepare.py --input=PATH    # a local copy

tiktoken itself downloads the GPT-2 vocabulary once; offline, point TIKTOKEN_CACHE_DIR at
a folder holding its cache files. Writes train.bin, val.bin (uint16) and meta.json:
    train has 301,966 tokens
    val has 36,059 tokens
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
from data.tokenizer import Tokenizer  # noqa: E402
from data.writer import write_dataset  # noqa: E402
from data.shakespeare_char.prepare import read_text  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--input", help="local text file instead of downloading")
    ap.add_argument("--out_dir", default=os.path.dirname(os.path.abspath(__file__)),
                    help="where train.bin, val.bin and meta.json go (default: this folder)")
    args = ap.parse_args(argv)

    text, source = read_text(args.input, args.out_dir)
    spec = {"kind": "tiktoken", "name": "gpt2"}
    try:
        tok = Tokenizer(spec)
    except ConnectionError as e:  # GPT-2's BPE files, which tiktoken downloads once
        sys.exit(f"error: {e}")
    n = int(0.9 * len(text))  # split the text 90/10, then encode each part
    train_ids, val_ids = tok.encode_ordinary([text[:n], text[n:]])
    meta = write_dataset(args.out_dir, train_ids, val_ids, tokenizer=spec, vocab_size=tok.vocab_size, source=source)
    print(f"train has {meta['train_tokens']:,} tokens")
    print(f"val has {meta['val_tokens']:,} tokens")


if __name__ == "__main__":
    main()
