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
from data.common import DataError, download, read_text_file, write_char_dataset  # noqa: E402

# pg996.txt as Project Gutenberg published it ("Most recently updated: March 30, 2023"), at a
# pinned commit of a mirror, so that the checksum keeps matching when Gutenberg re-issues it
URL = ("https://raw.githubusercontent.com/P-C-R-P/ML-Don-Quixote/"
       "5e4568f650fee0400b001f971b57fe3f132803e7/don_quixote.txt")
SHA256 = "a1e5d836d41c6877014c7564ad43e0e95c58e76fcb5075f8ab946104a68c3e29"


def strip_gutenberg(text):
    """The book between Gutenberg's START and END marker lines, with "\\n" line endings."""
    text = text.lstrip("\ufeff").replace("\r\n", "\n")
    start, end = text.find("*** START OF"), text.find("*** END OF")
    if start < 0 or end < start:
        raise DataError("no '*** START OF' / '*** END OF' lines: this is not a Project Gutenberg text file")
    start = text.index("\n", start) + 1  # the line after the START marker
    end = text.rfind("\n", 0, end) + 1  # the END marker's line begins here
    return text[start:end].strip() + "\n"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--input", help="a local copy of the Gutenberg text instead of downloading")
    ap.add_argument("--out_dir", default=os.path.dirname(os.path.abspath(__file__)))
    args = ap.parse_args(argv)

    try:
        path = args.input
        if not path:
            os.makedirs(args.out_dir, exist_ok=True)
            path = download(URL, os.path.join(args.out_dir, "input.txt"), SHA256)
        text = strip_gutenberg(read_text_file(path))
    except (DataError, ConnectionError, ValueError) as e:  # ValueError: a download with the wrong checksum
        sys.exit(f"error: {e}")
    write_char_dataset(args.out_dir, text, source=args.input or URL)


if __name__ == "__main__":
    main()
