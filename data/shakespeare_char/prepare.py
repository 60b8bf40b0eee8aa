"""
Tiny Shakespeare at the character level: every distinct character is a token.

    python data/shakespeare_char/prepare.py                 # download (checks sha256)
    python data/shakespeare_char/prepare.py --input=PATH    # a local copy

Without a network and without --input, it says so and uses a corpus that ships with
Python itself (the standard library's pydoc reference text), so the quickstart runs
anywhere; the numbers below are for Shakespeare.

Writes train.bin, val.bin (uint16) and meta.json beside this file. On tiny Shakespeare:
    length of dataset in characters: 1,115,394
    vocab size: 65
    train has 1,003,854 tokens
    val has 111,540 tokens
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
from data.fetch import download  # noqa: E402
from data.writer import write_char_dataset  # noqa: E402

URL = "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt"
CHECKSUM = "sha256:86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed"


def fallback_text():
    """Python's own reference documentation (about 465k characters), present wherever Python is."""
    from pydoc_data.topics import topics
    return "\n\n".join(topics[k] for k in sorted(topics))


def read_text(input_path, out_dir):
    """The corpus text and where it came from."""
    if input_path:
        try:
            with open(input_path, encoding="utf-8") as f:
                return f.read(), input_path
        except FileNotFoundError:
            sys.exit(f"error: --input={input_path} does not exist")
        except UnicodeDecodeError as e:
            sys.exit(f"error: {input_path} is not UTF-8 text (byte {e.start}); convert it, e.g. iconv -t utf-8")
    path = os.path.join(out_dir, "input.txt")
    try:
        download(URL, path, CHECKSUM)
    except ConnectionError as e:
        print(f"warning: {e}\nwarning: falling back to Python's pydoc reference text (not Shakespeare)")
        return fallback_text(), "pydoc_data.topics"
    with open(path, encoding="utf-8") as f:
        return f.read(), URL


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--input", help="local text file instead of downloading")
    ap.add_argument("--out_dir", default=os.path.dirname(os.path.abspath(__file__)),
                    help="where train.bin, val.bin and meta.json go (default: this folder)")
    args = ap.parse_args(argv)

    text, source = read_text(args.input, args.out_dir)
    if not text:
        sys.exit(f"error: {args.input} is empty; give a text file with some content")
    write_char_dataset(args.out_dir, text, source)


if __name__ == "__main__":
    main()
