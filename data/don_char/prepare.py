"""
Don Quixote (Cervantes, tr. John Ormsby; Project Gutenberg eBook #996) at the character level.

    python data/don_char/prepare.py                 # download (checks sha256)
    python data/don_char/prepare.py --input=PATH    # a local copy of pg996.txt

The Gutenberg file starts with a byte-order mark and a licence header, ends with the
licence, and uses CRLF line endings; the novel is what lies between the "*** START OF" and
"*** END OF" lines, with line endings made "\\n". The first 90% of its characters train,
the last 10% validate. Writes train.bin, val.bin (uint16) and meta.json:
    length of the novel in characters: 2,299,290
    vocab size: 97
    train has 2,069,361 tokens
    val has 229,929 tokens
Then: python train.py config/train_don_char.py
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
from data.common import DataError  # noqa: E402
from data.fetch import DON_QUIXOTE_CHECKSUM, DON_QUIXOTE_URL, read_gutenberg  # noqa: E402
from data.writer import write_char_dataset  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--input", help="a local copy of the Gutenberg text instead of downloading")
    ap.add_argument("--out_dir", default=os.path.dirname(os.path.abspath(__file__)),
                    help="where train.bin, val.bin and meta.json go (default: this folder)")
    args = ap.parse_args(argv)

    try:
        text = read_gutenberg(DON_QUIXOTE_URL, DON_QUIXOTE_CHECKSUM, args.input, args.out_dir)
    except (DataError, ConnectionError, ValueError) as e:  # ValueError: a download with the wrong checksum
        sys.exit(f"error: {e}")
    write_char_dataset(args.out_dir, text, source=args.input or DON_QUIXOTE_URL)


if __name__ == "__main__":
    main()
