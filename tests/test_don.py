"""data/don (GPT-2 BPE) and data/don_char on a small Project Gutenberg-format fixture written
here: byte-order mark, licence header and footer around the START/END markers, CRLF endings."""

import json
import os
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from data.common import DataError  # noqa: E402
from data.fetch import strip_gutenberg  # noqa: E402
from data.don.prepare import main as prepare_don  # noqa: E402
from data.don_char.prepare import main as prepare_don_char  # noqa: E402

BOOK_LINES = ["DON QUIXOTE", "", "CHAPTER I.", "WHICH TREATS OF THE CHARACTER OF THE FAMOUS DON QUIXOTE",
              "", "In a village of La Mancha, the name of which I have no desire to call to",
              "mind, there lived not long since one of those gentlemen; “Señor,” said Sancho."] * 12


def gutenberg_file(path):
    lines = ["The Project Gutenberg eBook of Don Quixote", "", "This eBook is for the use of anyone anywhere.",
             "*** START OF THE PROJECT GUTENBERG EBOOK DON QUIXOTE ***", "", *BOOK_LINES, "", "",
             "*** END OF THE PROJECT GUTENBERG EBOOK DON QUIXOTE ***", "Updated editions will replace the previous one."]
    path.write_bytes(b"\xef\xbb\xbf" + "\r\n".join(lines).encode("utf-8") + b"\r\n")
    return str(path)


def test_don_prepare_counts_gpt2_tokens_of_the_book_only(tmp_path, capsys):
    tiktoken = pytest.importorskip("tiktoken")
    out = tmp_path / "don"
    prepare_don([f"--input={gutenberg_file(tmp_path / 'pg996.txt')}", f"--out_dir={out}"])
    book = "\n".join(BOOK_LINES).strip() + "\n"  # the cleaning by hand: the lines between the markers
    enc = tiktoken.get_encoding("gpt2")
    n = int(0.9 * len(book))
    train, val = enc.encode_ordinary(book[:n]), enc.encode_ordinary(book[n:])
    meta = json.loads((out / "meta.json").read_text())
    assert (meta["train_tokens"], meta["val_tokens"]) == (len(train), len(val))
    assert meta["tokenizer"] == {"kind": "tiktoken", "name": "gpt2"} and meta["vocab_size"] == 50257
    assert np.fromfile(out / "train.bin", dtype=np.uint16).tolist() == train
    assert np.fromfile(out / "val.bin", dtype=np.uint16).tolist() == val
    assert f"train has {len(train):,} tokens" in capsys.readouterr().out


def test_don_char_uses_the_same_cleaning(tmp_path):
    out = tmp_path / "don_char"
    prepare_don_char([f"--input={gutenberg_file(tmp_path / 'pg996.txt')}", f"--out_dir={out}"])
    book = "\n".join(BOOK_LINES).strip() + "\n"
    meta = json.loads((out / "meta.json").read_text())
    assert meta["tokenizer"]["chars"] == "".join(sorted(set(book)))
    assert meta["train_tokens"] + meta["val_tokens"] == len(book)
    assert "\r" not in meta["tokenizer"]["chars"] and "\ufeff" not in meta["tokenizer"]["chars"]


def test_strip_gutenberg_refuses_other_text():
    with pytest.raises(DataError, match="not a Project Gutenberg text file"):
        strip_gutenberg("just some text\r\n")


def test_don_prepare_names_missing_input(tmp_path):
    with pytest.raises(SystemExit, match="does not exist; check --input"):
        prepare_don([f"--input={tmp_path / 'missing.txt'}", f"--out_dir={tmp_path / 'out'}"])
