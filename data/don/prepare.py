"""
Don Quixote (Cervantes, tr. John Ormsby; Project Gutenberg eBook #996) in GPT-2's byte-pair
encoding (tiktoken 'gpt2', 50257 tokens), to finetune GPT-2 on: config/finetune_don.py.

    python data/don/prepare.py                 # download (checks sha256)
    python data/don/prepare.py --input=PATH    # a local copy of pg996.txt

The book is cleaned as data/don_char does it (data.fetch.strip_gutenberg: no byte-order
mark, no licence header or footer, "\\n" line endings), then split 90/10 by characters and
each part encoded. tiktoken downloads the GPT-2 vocabulary once; offline, point
TIKTOKEN_CACHE_DIR at a folder holding its cache files. Writes train.bin, val.bin (uint16)
and meta.json:
    length of the novel in characters: 2,299,290
    train has 553,940 tokens
    val has 62,812 tokens
Then: python train.py config/finetune_don.py
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
from data.common import DataError  # noqa: E402
from data.fetch import DON_QUIXOTE_CHECKSUM, DON_QUIXOTE_URL, read_gutenberg  # noqa: E402
from data.tokenizer import GPT2_BPE, Tokenizer  # noqa: E402
from data.writer import write_dataset  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--input", help="a local copy of the Gutenberg text instead of downloading")
    ap.add_argument("--out_dir", default=os.path.dirname(os.path.abspath(__file__)),
                    help="where train.bin, val.bin and meta.json go (default: this folder)")
    args = ap.parse_args(argv)

    try:
        text = read_gutenberg(DON_QUIXOTE_URL, DON_QUIXOTE_CHECKSUM, args.input, args.out_dir)
        tok = Tokenizer(GPT2_BPE)  # ConnectionError offline without GPT-2's BPE files (tiktoken fetches them once)
    except (DataError, ConnectionError, ValueError) as e:  # ValueError: a download with the wrong checksum
        sys.exit(f"error: {e}")
    print(f"length of the novel in characters: {len(text):,}")
    n = int(0.9 * len(text))  # split the text 90/10, then encode each part
    train_ids, val_ids = tok.encode_ordinary([text[:n], text[n:]])
    meta = write_dataset(args.out_dir, train_ids, val_ids, tokenizer=GPT2_BPE, vocab_size=tok.vocab_size,
                         source=args.input or DON_QUIXOTE_URL)
    print(f"train has {meta['train_tokens']:,} tokens")
    print(f"val has {meta['val_tokens']:,} tokens")


if __name__ == "__main__":
    main()
