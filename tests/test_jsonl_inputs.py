"""data/jsonl/prepare.py on JSONL as other tools write it: a UTF-8 byte-order mark, CRLF line
endings, no newline after the last line, UTF-16 (refused in one line), one JSON array. No
valid document may be lost; the token counts are computed here with tiktoken directly."""

import gzip
import json
import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from data.jsonl.prepare import main as prepare_jsonl  # noqa: E402

DOCS = ["First document, the one a BOM used to eat.", "Second: “quotes”, ünïcödé.", "Third\nhas two lines.",
        "Fourth and last, held out for validation."]


def expected_ids():
    tiktoken = pytest.importorskip("tiktoken")
    enc = tiktoken.get_encoding("gpt2")
    return [enc.encode_ordinary(d) + [enc.eot_token] for d in DOCS]


def prepare(tmp_path, data, name="in.jsonl"):
    path = tmp_path / name
    path.write_bytes(data)
    out = tmp_path / "out"
    prepare_jsonl([f"--input={path}", f"--out_dir={out}", "--val_docs=1", "--num_proc=1"])
    meta = json.loads((out / "meta.json").read_text())
    return meta, np.fromfile(out / "train.bin", dtype=np.uint16).tolist(), np.fromfile(out / "val.bin", dtype=np.uint16).tolist()


def jsonl(newline="\n", last_newline=True):
    text = newline.join(json.dumps({"text": d}, ensure_ascii=False) for d in DOCS)
    return (text + (newline if last_newline else "")).encode("utf-8")


@pytest.mark.parametrize("case", ["plain", "bom", "crlf", "no_final_newline", "bom_crlf_no_final_newline", "gz"])
def test_no_valid_document_is_lost(tmp_path, case):
    data = {"plain": jsonl(), "bom": b"\xef\xbb\xbf" + jsonl(), "crlf": jsonl("\r\n"),
            "no_final_newline": jsonl(last_newline=False),
            "bom_crlf_no_final_newline": b"\xef\xbb\xbf" + jsonl("\r\n", last_newline=False),
            "gz": gzip.compress(b"\xef\xbb\xbf" + jsonl("\r\n"))}[case]
    meta, train, val = prepare(tmp_path, data, "in.jsonl.gz" if case == "gz" else "in.jsonl")
    ids = expected_ids()
    assert (meta["train_documents"], meta["val_documents"]) == (3, 1)
    assert train == sum(ids[:3], []) and val == ids[3]
    assert not any(meta["skipped"].values())


def test_two_files_put_together_with_cat_keep_both_boms_documents(tmp_path):
    meta, train, val = prepare(tmp_path, b"\xef\xbb\xbf" + jsonl()[:-1].rsplit(b"\n", 1)[0] + b"\n"
                               + b"\xef\xbb\xbf" + jsonl().rsplit(b"\n", 2)[1] + b"\n")
    assert meta["train_documents"] + meta["val_documents"] == 4 and not any(meta["skipped"].values())


@pytest.mark.parametrize("encoding,bom,name", [("utf-16-le", b"\xff\xfe", "UTF-16 (little-endian)"),
                                               ("utf-16-be", b"\xfe\xff", "UTF-16 (big-endian)"),
                                               ("utf-16-le", b"", "UTF-16 (little-endian)")])
def test_utf16_is_refused_in_one_line_naming_the_encoding(tmp_path, capsys, encoding, bom, name):
    with pytest.raises(SystemExit) as e:
        prepare(tmp_path, bom + jsonl().decode("utf-8").encode(encoding))
    assert str(e.value).startswith(f"error: {tmp_path / 'in.jsonl'} is {name} text, not UTF-8; convert it first")
    assert "\n" not in str(e.value)


def test_one_json_array_is_read_as_documents(tmp_path):
    data = b"\xef\xbb\xbf" + json.dumps([{"text": d} for d in DOCS], indent=2).replace("\n", "\r\n").encode("utf-8")
    meta, train, val = prepare(tmp_path, data)
    ids = expected_ids()
    assert train == sum(ids[:3], []) and val == ids[3]


def test_lines_that_are_arrays_are_still_lines(tmp_path):
    """A JSONL file whose first line is an array (not one array over the whole file): read as lines."""
    meta, train, val = prepare(tmp_path, b"[1, 2]\n" + jsonl())
    assert meta["skipped"]["missing_key"] == 1 and meta["train_documents"] + meta["val_documents"] == 4
