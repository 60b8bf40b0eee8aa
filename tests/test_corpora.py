"""The corpus prepare scripts: data/jsonl, data/openwebtext, data/wikitext, data/don_char.

Exact token and skip counts against tiktoken, documents back in order, compressed inputs,
the uint32 path, the trained BPE tokenizer, one-line errors, and train.py / sample.py on
each kind of prepared dataset. The scripts' main() runs in this process; the command line
itself is tested once per script, in the errors test. Hugging Face datasets are read with
the json builder on local files (the hub code path, without the hub)."""

import gzip
import json
import os
import re
import threading

import numpy as np
import pytest
import tiktoken

import data.don_char.prepare as don_char
import data.jsonl.prepare as jsonl
import data.openwebtext.prepare as openwebtext
import data.shakespeare_char.prepare as shakespeare_char
import data.wikitext.prepare as wikitext
from conftest import exit_message, fixture, in_process, quietly, run
from data.common import load_meta, open_tokens
from data.tokenizer import Tokenizer
from data.writer import ordered_pool_map

TINY = ["--device=cpu", "--dtype=float32", "--n_layer=2", "--n_head=2", "--n_embd=32", "--block_size=32", "--batch_size=4",
        "--gradient_accumulation_steps=1", "--eval_iters=2", "--eval_interval=5", "--max_iters=5",
        "--log_interval=1", "--compile=False"]


def gpt2():
    """GPT-2's BPE, from the tiktoken cache in tests/data (conftest points TIKTOKEN_CACHE_DIR there)."""
    return tiktoken.get_encoding("gpt2")


def all_ids(data_dir):
    meta = load_meta(data_dir)
    return meta, np.concatenate([open_tokens(data_dir, "train", meta), open_tokens(data_dir, "val", meta)])


def split_docs(ids, eot):
    """(N,) ids with an end-of-text after every document -> list of per-document id arrays."""
    ends = np.flatnonzero(ids == eot)
    assert len(ids) and ends[-1] == len(ids) - 1, "the stream must end with end-of-text"
    starts = np.concatenate([[0], ends[:-1] + 1])
    return [ids[s:e] for s, e in zip(starts, ends)]


def prepare(main, *args):
    """Run a prepare script's main(args) in this process; returns what it printed."""
    return quietly(main, [str(a) for a in args])[1]


def redpajama_records():
    with open(fixture("redpajama_format.jsonl"), encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def shakespeare_text():
    with open(fixture("tinyshakespeare.txt"), encoding="utf-8") as f:
        return f.read()


def real_documents():
    """Valid documents of every flavour: a LaTeX paper, verse, prose, CRLF text, non-ASCII, a
    literal end-of-text string, surrounding whitespace."""
    docs = [r["text"][:20000] for r in redpajama_records()]
    docs += [p for p in shakespeare_text()[:60000].split("\n\n") if p][:150]
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
    assert os.path.getsize(tmp_path / "mixed.jsonl") > 10 * 8 * 1024  # many blocks of 8 KB below
    out1, out2 = tmp_path / "p1", tmp_path / "p2"
    for out, procs in ((out1, 1), (out2, 2)):  # 8 KB blocks: many tasks, so order across workers is tested
        printed = prepare(jsonl.main, f"--input={tmp_path / 'mixed.jsonl'}", f"--out_dir={out}",
                          f"--num_proc={procs}", "--block_kb=8", "--val_docs=5")
    meta, ids = all_ids(str(out2))
    assert meta["skipped"] == expected, printed
    assert all(f"{n:,} {reason}" in printed for reason, n in expected.items())  # on the console too
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
        prepare(jsonl.main, f"--input={tmp_path / inp}", f"--out_dir={outs[name]}", "--num_proc=2",
                "--val_docs=3", "--block_kb=16")
    for name in ("gz", "zst", "glob"):
        for f in ("train.bin", "val.bin"):
            assert (outs[name] / f).read_bytes() == (outs["plain"] / f).read_bytes(), (name, f)
    meta = load_meta(str(outs["plain"]))
    assert meta["train_tokens"] + meta["val_tokens"] == sum(len(gpt2().encode_ordinary(d)) + 1 for d in docs)


_HELD = threading.Lock()  # held by a thread of the test process while the workers start


def lock_is_free(_):
    """A worker's view of _HELD: True when it can take the lock within 5 s."""
    took = _HELD.acquire(timeout=5)
    if took:
        _HELD.release()
    return took


def test_pool_workers_do_not_inherit_locks_held_by_other_threads():
    """prepare.py runs beside other threads (torch's, the tokenizers'). A forked worker would get
    a copy of every lock one of them held at the fork, held for good: the worker that needs it
    hangs. Spawned workers import the module afresh, so the lock is free there."""
    taken, done = threading.Event(), threading.Event()

    def hold():
        with _HELD:
            taken.set()
            done.wait()
    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert taken.wait(5)
        assert list(ordered_pool_map(lock_is_free, range(4), num_proc=2)) == [True] * 4
    finally:
        done.set()
        holder.join()


@pytest.fixture(scope="module")
def redpajama_data(tmp_path_factory):
    """The RedPajama-format fixture prepared with GPT-2's BPE: (folder, what prepare printed)."""
    out = tmp_path_factory.mktemp("redpajama")
    return str(out), prepare(jsonl.main, f"--input={fixture('redpajama_format.jsonl')}", f"--out_dir={out}",
                             "--num_proc=2")


def test_jsonl_redpajama_records_counts(redpajama_data):
    out, printed = redpajama_data
    records = redpajama_records()
    assert all(isinstance(r["text"], str) and isinstance(r["meta"], dict) for r in records)  # the record format
    meta = load_meta(out)
    want = [len(gpt2().encode_ordinary(r["text"])) + 1 for r in records]
    assert (meta["train_tokens"], meta["val_tokens"]) == (sum(want[:-1]), want[-1])  # 0.05% of 20 -> 1 document
    assert (meta["train_documents"], meta["val_documents"]) == (len(records) - 1, 1) == (19, 1)
    assert "skipped: none" in printed


def shifted_tokenizer(folder, shift=66000):
    """A byte-level BPE trained on the WikiText-2 valid fixture, then given ids shift.. (a
    vocabulary of over 65,536 ids, the size of a large production tokenizer) with unused
    fillers below."""
    from tokenizers import Tokenizer as HFTokenizer
    small = str(folder / "small.json")
    lines = wikitext.file_lines(fixture("wikitext-2", "wiki.valid.raw"))
    wikitext.train_tokenizer(wikitext.articles(lines), 600, small)
    spec = json.load(open(small))
    spec["model"]["vocab"] = {**{f"<unused{i}>": i for i in range(shift)},
                              **{t: i + shift for t, i in spec["model"]["vocab"].items()}}
    for added in spec["added_tokens"]:
        added["id"] += shift
    big = str(folder / "big_tokenizer.json")
    json.dump(spec, open(big, "w"))
    assert HFTokenizer.from_file(big).get_vocab_size() == shift + 600
    return big


@pytest.fixture(scope="module")
def u32_data(tmp_path_factory):
    """60 documents prepared with a 66,600-id tokenizer: (folder, the documents)."""
    folder = tmp_path_factory.mktemp("u32")
    big = shifted_tokenizer(folder)
    docs = real_documents()[:60]
    with open(folder / "docs.jsonl", "w") as f:
        f.writelines(json.dumps({"text": d}) + "\n" for d in docs)
    out = folder / "u32"
    prepare(jsonl.main, f"--input={folder / 'docs.jsonl'}", f"--out_dir={out}", f"--tokenizer={big}",
            "--num_proc=2", "--val_docs=10")
    return str(out), docs


def test_uint32_path_with_a_large_vocabulary(u32_data):
    out, docs = u32_data
    meta, ids = all_ids(out)
    assert meta["dtype"] == "uint32" and meta["vocab_size"] == 66600 and ids.dtype == np.uint32
    assert meta["tokenizer"] == {"kind": "hf", "file": "tokenizer.json"}
    assert os.path.isfile(os.path.join(out, "tokenizer.json"))
    assert os.path.getsize(os.path.join(out, "train.bin")) == 4 * meta["train_tokens"]
    assert ids.min() >= 66000 and ids.max() < 66600
    tok = Tokenizer.from_meta(meta, out)
    assert [tok.decode(d) for d in split_docs(ids, tok.eot)] == docs


def test_hf_datasets_json_builder_matches_the_file_reader(tmp_path):
    docs = real_documents()[:80]
    rows = [{"text": d} for d in docs] + [{"text": ""}, {"text": None}]  # 1 empty, 1 not a string
    with open(tmp_path / "docs.jsonl", "w") as f:
        f.writelines(json.dumps(r) + "\n" for r in rows)
    inp = str(tmp_path / "docs.jsonl")
    common = [f"--input={inp}", "--num_proc=2", "--val_fraction=0.05"]
    prepare(jsonl.main, *common, f"--out_dir={tmp_path / 'files'}")
    prepare(jsonl.main, *common, "--hf_dataset=json", f"--out_dir={tmp_path / 'hf'}")
    prepare(jsonl.main, *common, "--hf_dataset=json", "--streaming", f"--out_dir={tmp_path / 'hf_stream'}")
    prepare(openwebtext.main, *common, "--hf_dataset=json", f"--out_dir={tmp_path / 'owt'}")
    ref = load_meta(str(tmp_path / "files"))
    assert ref["skipped"] == {"invalid_utf8": 0, "invalid_json": 0, "missing_key": 0, "not_string": 1, "empty": 1}
    assert (ref["train_documents"], ref["val_documents"]) == (76, 4)  # round(0.05 * 80)
    for name in ("hf", "hf_stream", "owt"):
        assert load_meta(str(tmp_path / name))["skipped"] == ref["skipped"], name
        for f in ("train.bin", "val.bin"):
            assert (tmp_path / name / f).read_bytes() == (tmp_path / "files" / f).read_bytes(), (name, f)


@pytest.fixture(scope="module")
def wikitext_data(tmp_path_factory):
    """The WikiText-2 fixture prepared with a 1000-id BPE trained on it: (folder, what prepare printed)."""
    out = tmp_path_factory.mktemp("wikitext")
    return str(out), prepare(wikitext.main, f"--input={fixture('wikitext-2')}", "--train_split=valid",
                             "--val_split=test", "--vocab_size=1000", f"--out_dir={out}")


def test_wikitext_bpe_roundtrip_and_vocab(wikitext_data):
    out, printed = wikitext_data
    meta, _ = all_ids(out)
    assert meta["tokenizer"] == {"kind": "hf", "file": "tokenizer.json"} and meta["vocab_size"] == 1000
    tok = Tokenizer.from_meta(meta, out)
    assert tok.enc.get_vocab_size() == 1000 and tok.eot == 0
    for split, name in (("train", "valid"), ("val", "test")):
        with open(fixture("wikitext-2", f"wiki.{name}.raw"), encoding="utf-8") as f:
            text = f.read()
        docs = [tok.decode(d) for d in split_docs(np.array(open_tokens(out, split, meta)), tok.eot)]
        assert "".join(docs) == text  # every byte back
        n_articles = len(re.findall(r"^ = [^=].* = $", text, flags=re.M))
        assert len(docs) == n_articles > 1, printed  # one per article
        assert f"({name}) has " in printed and f" in {n_articles:,} articles" in printed
        assert all(d.lstrip(" \n").startswith("= ") for d in docs)
    for text in ["na\u00efve caf\u00e9 \u2014 \u6771\u4eac \U0001F642\r\n\ttabs", "The Valkyria Chronicles III"]:
        assert tok.decode(tok.encode(text)) == text


def gutenberg_novel(path):
    """The text between the "*** START OF" and "*** END OF" lines, found line by line with
    plain Python, with "\\n" line endings: what data/don_char/prepare.py should keep."""
    with open(path, "rb") as f:
        raw = f.read()
    assert raw.startswith(b"\xef\xbb\xbf") and raw.count(b"\r\n") == raw.count(b"\n") > 100  # as Gutenberg ships it
    lines = raw[3:].decode("utf-8").split("\r\n")
    start = next(i for i, line in enumerate(lines) if line.startswith("*** START OF"))
    end = next(i for i, line in enumerate(lines) if line.strip().startswith("*** END OF"))
    assert start < 40 and end < len(lines) - 100  # a licence header above, and the licence below
    return "\n".join(lines[start + 1:end]).strip() + "\n"


def test_don_char_strips_gutenberg(tmp_path):
    out = tmp_path / "don"
    printed = prepare(don_char.main, f"--input={fixture('don_quixote_pg996_slice.txt')}", f"--out_dir={out}")
    meta, ids = all_ids(str(out))
    novel = gutenberg_novel(fixture("don_quixote_pg996_slice.txt"))
    n = int(0.9 * len(novel))
    want = (n, len(novel) - n, len(set(novel)))  # 90% of the characters train; the vocabulary is every one
    assert (meta["train_tokens"], meta["val_tokens"], meta["vocab_size"]) == want, printed
    text = Tokenizer.from_meta(meta).decode(ids)
    assert text == novel
    with open(fixture("don_quixote_pg996_slice.txt"), encoding="utf-8-sig") as f:
        original = f.read()  # text mode: CRLF already "\n"
    assert text.strip() in original and len(text) > 0.95 * len(original) - 30000
    assert "\r" not in text and "\ufeff" not in text and "***" not in text and "PROJECT GUTENBERG" not in text.upper()[-20000:]
    assert "In a village of La Mancha" in text and text.endswith("Farewell.\u201d\n\n\n\np74e.jpg (49K)\n\nFull Size\n")


@pytest.mark.slow
@pytest.mark.parametrize("corpus", ["gpt2_bpe", "hf_bpe_uint32", "wikitext_bpe"])
def test_train_and_sample_on_a_prepared_corpus(corpus, request, tmp_path):
    """train.py and sample.py on each kind of prepared data beyond the characters (which
    test_train.py covers): GPT-2's BPE in uint16, a trained BPE in uint32, and WikiText's."""
    data_dir, start = {"gpt2_bpe": (lambda: request.getfixturevalue("redpajama_data")[0], "The"),
                       "hf_bpe_uint32": (lambda: request.getfixturevalue("u32_data")[0], "The"),
                       "wikitext_bpe": (lambda: request.getfixturevalue("wikitext_data")[0], " = Robert")}[corpus]
    out = str(tmp_path / "run")
    p = run("train.py", f"--data_dir={data_dir()}", f"--out_dir={out}", *TINY)
    assert "val ppl" in p.stdout
    # sample.py's command line is test_train.py's; here its decoding of each kind
    printed = in_process("sample.py", f"--out_dir={out}", "--num_samples=1", "--max_new_tokens=20", f"--start={start}",
                         "--device=cpu")
    assert printed.startswith(start) and len(printed.split("\n---")[0]) > len(start)


def test_every_script_fails_with_one_clear_line(tmp_path, monkeypatch):
    empty, latin1 = tmp_path / "empty.jsonl", tmp_path / "latin1.txt"
    empty.write_bytes(b"")
    latin1.write_bytes("Don Quixote de la Mancha, se\u00f1or\n".encode("latin-1") * 100)
    not_utf8 = tmp_path / "not_utf8.txt"
    not_utf8.write_bytes(b"\xff\xfe\x00bad")
    wt = tmp_path / "wt"
    wt.mkdir()
    (wt / "wiki.train.raw").write_bytes(latin1.read_bytes())
    (wt / "wiki.valid.raw").write_bytes(b"")
    out = f"--out_dir={tmp_path / 'out'}"
    cases = [
        (jsonl.main, [f"--input={tmp_path / 'missing.jsonl'}"], "does not exist"),
        (jsonl.main, [f"--input={empty}"], "is empty"),
        (jsonl.main, [f"--input={tmp_path / 'nothing*.jsonl'}"], "no file matches"),
        (jsonl.main, [f"--input={latin1}"], "no usable documents in the input (skipped: 100 invalid_utf8)"),
        (jsonl.main, [f"--input={latin1}", "--tokenizer=no_such_encoding"], "neither a file nor a tiktoken"),
        (jsonl.main, ["--hf_dataset=someone/corpus"], "pass --input"),
        (openwebtext.main, [], "pass --input"),
        (wikitext.main, [], "pass --input"),
        (wikitext.main, [f"--input={wt}"], "is not UTF-8 text (line 1"),
        (wikitext.main, [f"--input={wt}", "--train_split=valid", "--val_split=test"], "is empty"),
        (wikitext.main, [f"--input={wt}", "--train_split=test"], "does not exist"),
        (don_char.main, [f"--input={tmp_path / 'missing.txt'}"], "does not exist"),
        (don_char.main, [f"--input={empty}"], "is empty"),
        (don_char.main, [f"--input={latin1}"], "is not UTF-8 text"),
        (shakespeare_char.main, [f"--input={empty}"], "empty"),
        (shakespeare_char.main, [f"--input={not_utf8}"], "not UTF-8"),
    ]
    for main, args, words in cases:
        line = exit_message(main, [*args, out])
        assert words in line, (main.__module__, args, line)
    # the same on the command line: one line on stderr, no traceback, for each script; the
    # download goes through a proxy that is not there (port 9, discard: refused at once)
    monkeypatch.setenv("https_proxy", "http://127.0.0.1:9")
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")
    commands = [
        (["data/jsonl/prepare.py", f"--input={tmp_path / 'missing.jsonl'}"], "does not exist"),
        (["data/openwebtext/prepare.py"], "pass --input"),
        (["data/wikitext/prepare.py", f"--input={wt}"], "is not UTF-8 text (line 1"),
        (["data/don_char/prepare.py"], "pass --input"),  # the download, refused
        (["data/shakespeare_char/prepare.py", f"--input={not_utf8}"], "not UTF-8"),
    ]
    for args, words in commands:
        p = run(*args, out, check=False)
        lines = p.stderr.strip().splitlines()
        assert p.returncode != 0 and len(lines) == 1 and lines[0].startswith("error: "), p.stderr
        assert words in lines[0], (args, lines[0])


def test_gpt2_bpe_without_its_files_offline_is_one_line(tmp_path, monkeypatch, network_attempts):
    """tiktoken fetches an encoding's files on first use: offline, with an empty cache, the GPT-2
    BPE datasets' prepare scripts and every reader of a BPE run say what to do in one line."""
    import tiktoken.registry

    import data.don.prepare as don
    import data.shakespeare.prepare as shakespeare
    from data.tokenizer import Tokenizer
    monkeypatch.setattr(tiktoken.registry, "ENCODINGS", {})  # nothing loaded in this process yet
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path / "empty_cache"))
    for main, text in [(shakespeare.main, "tinyshakespeare.txt"), (don.main, "don_quixote_pg996_slice.txt")]:
        line = exit_message(main, [f"--input={fixture(text)}", f"--out_dir={tmp_path / 'out'}"])
        assert "could not load the tiktoken encoding gpt2" in line and "TIKTOKEN_CACHE_DIR" in line, line
    with pytest.raises(ConnectionError, match="go online once, or set TIKTOKEN_CACHE_DIR"):
        Tokenizer({"kind": "tiktoken", "name": "gpt2"})  # what evaluate.py and sample.py print as their error
    assert network_attempts()  # it tried, and was refused
    assert not os.path.exists(tmp_path / "out" / "train.bin")


def test_tokenizer_answers_vocab_size_and_encodes_documents():
    chars = Tokenizer({"kind": "char", "chars": "\nabc"})
    assert chars.vocab_size == 4 and chars.encode_ordinary(["ab", "c"]) == [[1, 2], [3]]
    bpe = Tokenizer({"kind": "tiktoken", "name": "gpt2"})
    assert bpe.vocab_size == 50257
    ids, lens = bpe.encode_documents(["hello world", "a <|endoftext|> b"], "uint16")
    assert ids.dtype == np.uint16 and lens.tolist() == [3, len(ids) - 3]
    assert ids[:3].tolist() == [31373, 995, 50256] and ids[-1] == 50256
    assert 50256 not in ids[3:-1].tolist()  # a literal <|endoftext|> inside a document is only text
    assert bpe.encode("a<|endoftext|>")[-1] == 50256  # in a prompt it is the special token


def test_download_checks_sha256_and_git_blob_ids_and_keeps_no_bad_bytes(tmp_path):
    """download() on a file:// URL (no network): a checksum that matches keeps the file, one that
    does not leaves neither the file nor its .part. A git-blob id is what `git hash-object` prints."""
    import hashlib
    import shutil
    import subprocess

    from data.fetch import checksum_of, download
    src = tmp_path / "src.jsonl"
    data = '{"ctx": "caf\u00e9"}\r\n'.encode() * 300
    src.write_bytes(data)
    sha = hashlib.sha256(data).hexdigest()
    if shutil.which("git"):
        blob = subprocess.run(["git", "hash-object", str(src)], capture_output=True, text=True, check=True).stdout.strip()
        assert checksum_of(str(src), "git-blob") == blob
    # git's object ids, by its own definition: sha1 over a "blob <size>\0" header and the bytes
    assert checksum_of(str(src), "git-blob") == hashlib.sha1(b"blob %d\0%b" % (len(data), data)).hexdigest()
    url = src.as_uri()
    for checksum in (f"sha256:{sha}", f"git-blob:{checksum_of(str(src), 'git-blob')}"):
        dest = tmp_path / f"{checksum[:6]}.jsonl"
        assert download(url, str(dest), checksum) == str(dest) and dest.read_bytes() == data
    dest = tmp_path / "bad.jsonl"
    with pytest.raises(ValueError, match="does not match git-blob:0000"):
        download(url, str(dest), "git-blob:" + "0" * 40)
    assert not dest.exists() and not (tmp_path / "bad.jsonl.part").exists()
    with pytest.raises(ValueError, match="give 'sha256:HEX' or 'git-blob:HEX'"):
        download(url, str(dest), "md5:abc")
