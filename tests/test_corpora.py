"""The corpus prepare scripts: data/jsonl, data/openwebtext, data/wikitext, data/don_char.

Exact token and skip counts against tiktoken, documents back in order, compressed inputs,
the uint32 path, the trained BPE tokenizer, one-line errors, and train.py / sample.py on
each prepared dataset. Hugging Face datasets are read with the json builder on local files
(the hub code path, without the hub)."""

import gzip
import json
import os
import re

import numpy as np
import pytest
import tiktoken

from conftest import run, shared
from data.common import Tokenizer, load_meta, open_tokens

TINY = ["--device=cpu", "--n_layer=2", "--n_head=2", "--n_embd=32", "--block_size=32", "--batch_size=4",
        "--gradient_accumulation_steps=1", "--eval_iters=2", "--eval_interval=5", "--max_iters=5",
        "--log_interval=1", "--compile=False"]


def gpt2():
    """GPT-2's BPE from the shared tiktoken cache (a clear failure, not a download, when it is missing)."""
    shared("tiktoken_cache")
    return tiktoken.get_encoding("gpt2")


@pytest.fixture(autouse=True)
def offline_hub(tmp_path, monkeypatch):
    """Hugging Face datasets: a private cache, and never the network."""
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf_cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")


def all_ids(data_dir):
    meta = load_meta(data_dir)
    return meta, np.concatenate([open_tokens(data_dir, "train", meta), open_tokens(data_dir, "val", meta)])


def split_docs(ids, eot):
    """(N,) ids with an end-of-text after every document -> list of per-document id arrays."""
    ends = np.flatnonzero(ids == eot)
    assert len(ids) and ends[-1] == len(ids) - 1, "the stream must end with end-of-text"
    starts = np.concatenate([[0], ends[:-1] + 1])
    return [ids[s:e] for s, e in zip(starts, ends)]


def train_and_sample(data_dir, out, start="The"):
    """A few tiny training steps and a short sample on a prepared folder; returns the sample text."""
    p = run("train.py", f"--data_dir={data_dir}", f"--out_dir={out}", *TINY)
    assert "val ppl" in p.stdout
    s = run("sample.py", f"--out_dir={out}", "--num_samples=1", "--max_new_tokens=20", f"--start={start}", "--device=cpu")
    assert s.stdout.startswith(start)
    return s.stdout


def real_documents():
    """Valid documents of every flavour: arXiv LaTeX, verse, prose, non-ASCII, a literal
    end-of-text string, surrounding whitespace."""
    with open(shared("pile_sample", "redpajama_arxiv_sample.jsonl"), encoding="utf-8") as f:
        docs = [json.loads(line)["text"][:20000] for line in f]
    with open(shared("tinyshakespeare", "input.txt"), encoding="utf-8") as f:
        docs += [p for p in f.read()[:60000].split("\n\n") if p][:150]
    docs += ["Caf\u00e9 na\u00efve \u2014 \u6771\u4eac \U0001F642", "text with <|endoftext|> inside it", "  \n spaces \t "]
    return docs


def bad_lines():
    """(raw line bytes, reason) for every way a line can be skipped."""
    return [
        (b'{"text": "no closing brace"', "invalid_json"),
        (b"not json at all", "invalid_json"),
        (b'{"body": "the wrong key"}', "missing_key"),
        (b"[1, 2, 3]", "missing_key"),
        (b'"a bare string"', "missing_key"),
        (b'{"text": 5}', "not_string"),
        (b'{"text": null}', "not_string"),
        (b'{"text": ["a", "list"]}', "not_string"),
        (b'{"text": ""}', "empty"),
        (b"", "empty"),
        (b"   \t", "empty"),
        (b'{"text": "caf\xe9 in latin-1"}', "invalid_utf8"),
        (b'{"text": "\\ud800 a lone surrogate"}', "invalid_utf8"),
    ]


def write_mixed_jsonl(path, docs):
    """Valid documents interleaved with the bad lines (some escaped, some not); the last line
    has no newline. Returns the expected skip counts."""
    bad = bad_lines()
    lines = []
    for i, doc in enumerate(docs):
        lines.append(json.dumps({"text": doc, "id": i}, ensure_ascii=i % 2 == 0).encode())
        if i % 7 == 0:
            lines.append(bad[(i // 7) % len(bad)][0])
    lines += [b for b, _ in bad]
    lines.append(json.dumps({"text": "the last line has no newline"}).encode())
    with open(path, "wb") as f:
        f.write(b"\n".join(lines))
    expected = dict.fromkeys(("invalid_utf8", "invalid_json", "missing_key", "not_string", "empty"), 0)
    for i in range(0, len(docs), 7):
        expected[bad[(i // 7) % len(bad)][1]] += 1
    for _, reason in bad:
        expected[reason] += 1
    return docs + ["the last line has no newline"], expected


def test_jsonl_exact_counts_skips_and_order(tmp_path):
    docs, expected = write_mixed_jsonl(tmp_path / "mixed.jsonl", real_documents())
    out1, out2 = tmp_path / "p1", tmp_path / "p2"
    for out, procs in ((out1, 1), (out2, 2)):  # 48 KB blocks: many tasks, so order across workers is tested
        p = run("data/jsonl/prepare.py", f"--input={tmp_path / 'mixed.jsonl'}", f"--out_dir={out}",
                f"--num_proc={procs}", "--block_kb=48", "--val_docs=5")
    meta, ids = all_ids(str(out2))
    assert meta["skipped"] == expected, p.stdout
    assert all(f"{n:,} {reason}" in p.stdout for reason, n in expected.items())  # on the console too
    assert (meta["train_documents"], meta["val_documents"]) == (len(docs) - 5, 5)
    assert meta["dtype"] == "uint16" and meta["tokenizer"] == {"kind": "tiktoken", "name": "gpt2"}
    want = [gpt2().encode_ordinary(d) for d in docs]
    assert meta["train_tokens"] + meta["val_tokens"] == sum(len(w) + 1 for w in want)
    assert meta["val_tokens"] == sum(len(w) + 1 for w in want[-5:])
    assert [d.tolist() for d in split_docs(ids, gpt2().eot_token)] == want
    tok = Tokenizer.from_meta(meta)
    assert [tok.decode(d) for d in split_docs(ids, gpt2().eot_token)] == docs
    for split in ("train", "val"):  # one process or two: the same bytes
        assert (out1 / f"{split}.bin").read_bytes() == (out2 / f"{split}.bin").read_bytes()
    assert not [f for f in os.listdir(out2) if f.endswith(".tmp")]


def test_jsonl_gz_zst_and_globs_give_identical_bins(tmp_path):
    import zstandard
    docs = real_documents()
    raw = "".join(json.dumps({"text": d}) + "\n" for d in docs).encode()
    (tmp_path / "plain.jsonl").write_bytes(raw)
    (tmp_path / "c.jsonl.gz").write_bytes(gzip.compress(raw))
    half = len(raw) // 2  # two zstd frames back to back, as pzstd and concatenation make
    zc = zstandard.ZstdCompressor()
    (tmp_path / "c.jsonl.zst").write_bytes(zc.compress(raw[:half]) + zc.compress(raw[half:]))
    cut = raw.index(b"\n", half) + 1  # the same lines split over two files, one compressed
    (tmp_path / "part1.jsonl").write_bytes(raw[:cut])
    (tmp_path / "part2.jsonl.gz").write_bytes(gzip.compress(raw[cut:]))
    outs = {}
    for name, inp in [("plain", "plain.jsonl"), ("gz", "c.jsonl.gz"), ("zst", "c.jsonl.zst"), ("glob", "part*")]:
        outs[name] = tmp_path / f"out_{name}"
        run("data/jsonl/prepare.py", f"--input={tmp_path / inp}", f"--out_dir={outs[name]}", "--num_proc=2",
            "--val_docs=3", "--block_kb=64")
    for name in ("gz", "zst", "glob"):
        for f in ("train.bin", "val.bin"):
            assert (outs[name] / f).read_bytes() == (outs["plain"] / f).read_bytes(), (name, f)
    meta = load_meta(str(outs["plain"]))
    assert meta["train_tokens"] + meta["val_tokens"] == sum(len(gpt2().encode_ordinary(d)) + 1 for d in docs)


def test_jsonl_shared_sample_trains_and_samples(tmp_path):
    out = tmp_path / "arxiv"
    p = run("data/jsonl/prepare.py", f"--input={shared('pile_sample', 'redpajama_arxiv_sample.jsonl')}",
            f"--out_dir={out}", "--num_proc=2")
    with open(shared("pile_sample", "redpajama_arxiv_sample.jsonl"), encoding="utf-8") as f:
        docs = [json.loads(line)["text"] for line in f]
    meta = load_meta(str(out))
    want = [len(gpt2().encode_ordinary(d)) + 1 for d in docs]
    assert (meta["train_tokens"], meta["val_tokens"]) == (sum(want[:-1]), want[-1])  # 0.05% of 20 -> 1 document
    assert (meta["train_documents"], meta["val_documents"]) == (19, 1)
    assert "skipped: none" in p.stdout
    train_and_sample(str(out), str(tmp_path / "run"))


def shifted_tokenizer(tmp_path, shift=66000):
    """A byte-level BPE trained on WikiText-2 valid, then given ids shift.. (a vocabulary of
    over 65,536 ids, the size of a large production tokenizer) with unused fillers below."""
    from tokenizers import Tokenizer as HFTokenizer

    from data.wikitext.prepare import articles, file_lines, train_tokenizer
    small = str(tmp_path / "small.json")
    train_tokenizer(articles(file_lines(shared("wikitext-2", "wiki.valid.raw"))), 600, small)
    spec = json.load(open(small))
    spec["model"]["vocab"] = {**{f"<unused{i}>": i for i in range(shift)},
                              **{t: i + shift for t, i in spec["model"]["vocab"].items()}}
    for added in spec["added_tokens"]:
        added["id"] += shift
    big = str(tmp_path / "big_tokenizer.json")
    json.dump(spec, open(big, "w"))
    assert HFTokenizer.from_file(big).get_vocab_size() == shift + 600
    return big


def test_uint32_path_with_a_large_vocabulary(tmp_path):
    big = shifted_tokenizer(tmp_path)
    docs = real_documents()[:60]
    with open(tmp_path / "docs.jsonl", "w") as f:
        f.writelines(json.dumps({"text": d}) + "\n" for d in docs)
    out = tmp_path / "u32"
    run("data/jsonl/prepare.py", f"--input={tmp_path / 'docs.jsonl'}", f"--out_dir={out}", f"--tokenizer={big}",
        "--num_proc=2", "--val_docs=10")
    meta, ids = all_ids(str(out))
    assert meta["dtype"] == "uint32" and meta["vocab_size"] == 66600 and ids.dtype == np.uint32
    assert meta["tokenizer"] == {"kind": "hf", "file": "tokenizer.json"} and (out / "tokenizer.json").is_file()
    assert os.path.getsize(out / "train.bin") == 4 * meta["train_tokens"]
    assert ids.min() >= 66000 and ids.max() < 66600
    tok = Tokenizer.from_meta(meta, str(out))
    assert [tok.decode(d) for d in split_docs(ids, tok.eot)] == docs
    train_and_sample(str(out), str(tmp_path / "run"))


def test_hf_datasets_json_builder_matches_the_file_reader(tmp_path):
    docs = real_documents()[:80]
    rows = [{"text": d} for d in docs] + [{"text": ""}, {"text": None}]  # 1 empty, 1 not a string
    with open(tmp_path / "docs.jsonl", "w") as f:
        f.writelines(json.dumps(r) + "\n" for r in rows)
    inp = str(tmp_path / "docs.jsonl")
    common = [f"--input={inp}", "--num_proc=2", "--val_fraction=0.05"]
    run("data/jsonl/prepare.py", *common, f"--out_dir={tmp_path / 'files'}")
    run("data/jsonl/prepare.py", *common, "--hf_dataset=json", f"--out_dir={tmp_path / 'hf'}")
    run("data/jsonl/prepare.py", *common, "--hf_dataset=json", "--streaming", f"--out_dir={tmp_path / 'hf_stream'}")
    run("data/openwebtext/prepare.py", *common, "--hf_dataset=json", f"--out_dir={tmp_path / 'owt'}")
    ref = load_meta(str(tmp_path / "files"))
    assert ref["skipped"] == {"invalid_utf8": 0, "invalid_json": 0, "missing_key": 0, "not_string": 1, "empty": 1}
    assert (ref["train_documents"], ref["val_documents"]) == (76, 4)  # round(0.05 * 80)
    for name in ("hf", "hf_stream", "owt"):
        assert load_meta(str(tmp_path / name))["skipped"] == ref["skipped"], name
        for f in ("train.bin", "val.bin"):
            assert (tmp_path / name / f).read_bytes() == (tmp_path / "files" / f).read_bytes(), (name, f)
    train_and_sample(str(tmp_path / "owt"), str(tmp_path / "run"))


def test_wikitext_bpe_roundtrip_vocab_and_training(tmp_path):
    out = tmp_path / "wt"
    p = run("data/wikitext/prepare.py", f"--input={shared('wikitext-2')}", "--train_split=valid", "--val_split=test",
            "--vocab_size=1000", f"--out_dir={out}")
    meta, _ = all_ids(str(out))
    assert meta["tokenizer"] == {"kind": "hf", "file": "tokenizer.json"} and meta["vocab_size"] == 1000
    tok = Tokenizer.from_meta(meta, str(out))
    assert tok.enc.get_vocab_size() == 1000 and tok.eot == 0
    for split, name in (("train", "valid"), ("val", "test")):
        with open(shared("wikitext-2", f"wiki.{name}.raw"), encoding="utf-8") as f:
            text = f.read()
        docs = [tok.decode(d) for d in split_docs(np.array(open_tokens(str(out), split, meta)), tok.eot)]
        assert "".join(docs) == text  # every byte back
        assert len(docs) == len(re.findall(r"^ = [^=].* = $", text, flags=re.M)), p.stdout  # one per article
        assert all(d.lstrip(" \n").startswith("= ") for d in docs)
    for text in ["na\u00efve caf\u00e9 \u2014 \u6771\u4eac \U0001F642\r\n\ttabs", "The Valkyria Chronicles III"]:
        assert tok.decode(tok.encode(text)) == text
    train_and_sample(str(out), str(tmp_path / "run"), start=" = Robert")


def test_don_char_strips_gutenberg_and_trains(tmp_path):
    out = tmp_path / "don"
    p = run("data/don_char/prepare.py", f"--input={shared('don_quixote', 'input.txt')}", f"--out_dir={out}")
    meta, ids = all_ids(str(out))
    assert (meta["train_tokens"], meta["val_tokens"], meta["vocab_size"]) == (2069361, 229929, 97), p.stdout
    text = Tokenizer.from_meta(meta).decode(ids)
    with open(shared("don_quixote", "input.txt"), encoding="utf-8-sig") as f:
        original = f.read()  # text mode: CRLF already "\n"
    assert text.strip() in original and len(text) > 0.95 * len(original) - 30000
    assert "\r" not in text and "\ufeff" not in text and "***" not in text and "PROJECT GUTENBERG" not in text.upper()[-20000:]
    assert "In a village of La Mancha" in text and text.endswith("Farewell.\u201d\n\n\n\np74e.jpg (49K)\n\nFull Size\n")
    train_and_sample(str(out), str(tmp_path / "run"), start="Sancho")


def one_line_error(p):
    lines = p.stderr.strip().splitlines()
    assert p.returncode != 0 and len(lines) == 1 and lines[0].startswith("error: "), p.stderr
    return lines[0]


def test_every_script_fails_with_one_clear_line(tmp_path, monkeypatch):
    empty, latin1 = tmp_path / "empty.jsonl", tmp_path / "latin1.txt"
    empty.write_bytes(b"")
    latin1.write_bytes("Don Quixote de la Mancha, se\u00f1or\n".encode("latin-1") * 100)
    wt = tmp_path / "wt"
    wt.mkdir()
    (wt / "wiki.train.raw").write_bytes(latin1.read_bytes())
    (wt / "wiki.valid.raw").write_bytes(b"")
    out = f"--out_dir={tmp_path / 'out'}"
    cases = [
        (["data/jsonl/prepare.py", f"--input={tmp_path / 'missing.jsonl'}"], "does not exist"),
        (["data/jsonl/prepare.py", f"--input={empty}"], "is empty"),
        (["data/jsonl/prepare.py", f"--input={tmp_path / 'nothing*.jsonl'}"], "no file matches"),
        (["data/jsonl/prepare.py", f"--input={latin1}"], "no usable documents in the input (skipped: 100 invalid_utf8)"),
        (["data/jsonl/prepare.py", f"--input={latin1}", "--tokenizer=no_such_encoding"], "neither a file nor a tiktoken"),
        (["data/jsonl/prepare.py", "--hf_dataset=someone/corpus"], "pass --input"),
        (["data/openwebtext/prepare.py"], "pass --input"),
        (["data/wikitext/prepare.py"], "pass --input"),
        (["data/wikitext/prepare.py", f"--input={wt}"], "is not UTF-8 text (line 1"),
        (["data/wikitext/prepare.py", f"--input={wt}", "--train_split=valid", "--val_split=test"], "is empty"),
        (["data/wikitext/prepare.py", f"--input={wt}", "--train_split=test"], "does not exist"),
        (["data/don_char/prepare.py", f"--input={tmp_path / 'missing.txt'}"], "does not exist"),
        (["data/don_char/prepare.py", f"--input={empty}"], "is empty"),
        (["data/don_char/prepare.py", f"--input={latin1}"], "is not UTF-8 text"),
        (["data/don_char/prepare.py"], "pass --input"),  # the download, through a proxy that is not there
    ]
    monkeypatch.setenv("https_proxy", "http://127.0.0.1:9")  # port 9 (discard): refused at once, never the network
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")
    for args, words in cases:
        line = one_line_error(run(*args, out, check=False))
        assert words in line, (args, line)


def test_tokenizer_answers_vocab_size_and_encodes_documents(tmp_path):
    chars = Tokenizer({"kind": "char", "chars": "\nabc"})
    assert chars.vocab_size == 4 and chars.encode_ordinary(["ab", "c"]) == [[1, 2], [3]]
    bpe = Tokenizer({"kind": "tiktoken", "name": "gpt2"})
    assert bpe.vocab_size == 50257
    ids, lens = bpe.encode_documents(["hello world", "a <|endoftext|> b"], "uint16")
    assert ids.dtype == np.uint16 and lens.tolist() == [3, len(ids) - 3]
    assert ids[:3].tolist() == [31373, 995, 50256] and ids[-1] == 50256
    assert 50256 not in ids[3:-1].tolist()  # a literal <|endoftext|> inside a document is only text
    assert bpe.encode("a<|endoftext|>")[-1] == 50256  # in a prompt it is the special token
