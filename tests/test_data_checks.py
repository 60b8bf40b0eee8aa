"""A wrong folder never costs a run: damaged datasets, a checkpoint on another tokenizer's data,
an occupied out_dir and a failed save each stop with one line that names the file, before
anything is overwritten. Every train.py run here fails (or is a few steps), so this is fast."""

import errno
import json
import os
import shutil

import numpy as np
import pytest
import torch

import checkpoint
from conftest import TINY_TRAIN, exit_message, fixture, in_process, quietly, run, stop_writing_at
from data.common import DataError, load_meta, open_tokens
from optim import configure_optimizers
from data.tokenizer import same_tokenizer, tokenizer_identity
from data.writer import write_dataset
from data.loader import get_batch

FEW = TINY_TRAIN + ["--max_iters=2", "--eval_interval=2", "--eval_iters=1"]


def train(data, out, *extra):
    return run("train.py", f"--data_dir={data}", f"--out_dir={out}", *FEW, *extra, check=False)


def assert_one_line(p, *names):
    """A failed run: non-zero exit, no traceback, a last line 'error: ...' naming each of names."""
    assert p.returncode != 0, p.stdout[-2000:]
    assert "Traceback" not in p.stderr, p.stderr[-3000:]
    last = p.stderr.strip().splitlines()[-1]
    assert last.startswith("error: "), p.stderr[-2000:]
    for name in names:
        assert str(name) in last, (name, last)
    return last


@pytest.fixture
def data(char_data, tmp_path):
    """A copy of the prepared character dataset, for a test to damage."""
    return shutil.copytree(char_data, tmp_path / "data")


@pytest.fixture(scope="module")
def few_run(char_data, tmp_path_factory):
    """A two-step run on char_data: a checkpoint with a tokenizer record."""
    out = tmp_path_factory.mktemp("few") / "run"
    p = train(char_data, out)
    assert p.returncode == 0, p.stderr[-3000:]
    return out


def edit_meta(folder, **changes):
    meta = json.loads((folder / "meta.json").read_text())
    meta.update(changes)
    for k in [k for k, v in changes.items() if v is None]:
        del meta[k]
    (folder / "meta.json").write_text(json.dumps(meta))
    return meta


# ---------------------------------------------------------------- a damaged dataset folder

def test_prepare_records_the_largest_id(char_data):
    meta = load_meta(char_data)
    ids = np.concatenate([open_tokens(char_data, s, meta) for s in ("train", "val")])
    assert meta["max_token_id"] == int(ids.max()) < meta["vocab_size"]


def test_vocab_smaller_than_the_ids_is_one_line(data, tmp_path):
    edit_meta(data, vocab_size=20)  # the recorded max_token_id (64) is now past it
    p = train(data, tmp_path / "out")
    assert "token ids up to" in assert_one_line(p, data / "meta.json")
    assert not (tmp_path / "out").exists()


def test_ids_past_the_vocab_in_an_old_dataset_stop_at_the_batch(data, tmp_path):
    edit_meta(data, vocab_size=20, max_token_id=None)  # prepared before max_token_id: the batches are checked
    p = train(data, tmp_path / "out")
    assert "outside the vocabulary of 20" in assert_one_line(p, data / "train.bin")


def test_get_batch_checks_ids_on_the_cpu():
    data = np.array([1, 2, 3, 70, 4, 5], dtype=np.uint16)
    x, y = get_batch(data, [0, 1], 3, "cpu", vocab_size=100, path="t.bin")
    assert x.tolist() == [[1, 2, 3], [2, 3, 70]] and y.tolist() == [[2, 3, 70], [3, 70, 4]]
    assert x.is_contiguous() and y.is_contiguous() and x.dtype == torch.int64
    with pytest.raises(DataError, match=r"t.bin holds token id 70, outside the vocabulary of 65"):
        get_batch(data, [1], 3, "cpu", vocab_size=65, path="t.bin")
    get_batch(data, [1], 3, "cpu")  # unchecked when no vocab_size is given (bench.py --check_batches=False)


def test_cut_meta_json_is_one_line(data, tmp_path):
    text = (data / "meta.json").read_text()
    (data / "meta.json").write_text(text[: len(text) // 2])
    assert "is not valid JSON" in assert_one_line(train(data, tmp_path / "out"), data / "meta.json")


def test_meta_json_without_a_field_is_one_line(data, tmp_path):
    edit_meta(data, tokenizer=None)
    assert "lacks tokenizer" in assert_one_line(train(data, tmp_path / "out"), data / "meta.json")


def test_missing_split_is_one_line(data, tmp_path):
    os.remove(data / "val.bin")
    assert "is missing" in assert_one_line(train(data, tmp_path / "out"), data / "val.bin")


def test_empty_split_is_one_line(data, tmp_path):
    (data / "val.bin").write_bytes(b"")
    assert "is empty" in assert_one_line(train(data, tmp_path / "out"), data / "val.bin")


def test_split_cut_mid_token_is_one_line(data, tmp_path):
    raw = (data / "train.bin").read_bytes()
    (data / "train.bin").write_bytes(raw[:-1])  # an odd number of bytes: not whole uint16 tokens
    assert "not a whole number of uint16 tokens" in assert_one_line(train(data, tmp_path / "out"), data / "train.bin")


def test_split_of_another_length_than_recorded_is_one_line(data, tmp_path):
    raw = (data / "train.bin").read_bytes()
    (data / "train.bin").write_bytes(raw[: len(raw) // 2])
    assert "but its meta.json says" in assert_one_line(train(data, tmp_path / "out"), data / "train.bin")


def test_other_stages_check_the_folder_too(data, few_run):
    (data / "val.bin").write_bytes(b"")
    message = exit_message(in_process, "evaluate.py", f"--out_dir={few_run}", f"--data_dir={data}",
                           "--task=bpb", "--device=cpu")
    assert str(data / "val.bin") in message and "is empty" in message
    edit_meta(data, vocab_size=20)
    p = run("bench.py", f"--data_dir={data}", "--device=cpu", "--n_layer=1", "--n_head=2", "--n_embd=32",
            "--block_size=16", "--batch_size=2", "--gradient_accumulation_steps=1", "--num_steps=1",
            "--warmup_steps=0", check=False)
    assert "token ids up to" in assert_one_line(p, data / "meta.json")


def test_old_dataset_without_the_new_field_still_trains(data, tmp_path):
    edit_meta(data, max_token_id=None)
    p = train(data, tmp_path / "out")
    assert p.returncode == 0, p.stderr[-2000:]


# ---------------------------------------------------------------- a checkpoint on another tokenizer

def char_dataset(folder, chars):
    """A character dataset whose ids cover every character of chars."""
    ids = np.arange(len(chars)).repeat(40) % len(chars)
    write_dataset(str(folder), ids, ids[::-1], tokenizer={"kind": "char", "chars": chars}, vocab_size=len(chars))
    return folder


def test_checkpoint_records_its_tokenizer(char_data, few_run):
    saved = checkpoint.load_checkpoint(str(few_run / "ckpt.pt"))["tokenizer"]
    assert saved == tokenizer_identity(load_meta(char_data), char_data) and saved["kind"] == "char"


def test_resume_on_a_bigger_vocabulary_is_one_line(char_data, few_run, tmp_path):
    out = shutil.copytree(few_run, tmp_path / "run")
    wide = char_dataset(tmp_path / "wide", "".join(chr(0x100 + i) for i in range(300)))
    p = train(wide, out, "--init_from=resume", "--max_iters=4")
    last = assert_one_line(p, out / "ckpt.pt", wide)
    assert f"trained on {load_meta(char_data)['vocab_size']} characters" in last and "holds 300 characters" in last


def test_finetune_on_another_character_list_of_the_same_size_is_one_line(char_data, few_run, tmp_path):
    chars = load_meta(char_data)["tokenizer"]["chars"]
    other = char_dataset(tmp_path / "other", chars[::-1])  # 65 characters, each with another id
    p = train(other, tmp_path / "ft", f"--init_from=ckpt:{few_run}")
    assert_one_line(p, few_run / "ckpt.pt", other)
    assert not (tmp_path / "ft").exists()


def test_another_bpe_is_another_tokenizer(tmp_path):
    from tokenizers import Tokenizer, models
    for name, vocab in (("a", {"<|endoftext|>": 0, "x": 1}), ("b", {"<|endoftext|>": 0, "y": 1})):
        os.makedirs(tmp_path / name)
        Tokenizer(models.WordLevel(vocab, unk_token="x")).save(str(tmp_path / name / "tokenizer.json"))
    meta = {"vocab_size": 2, "tokenizer": {"kind": "hf", "file": "tokenizer.json"}}
    a, b = (tokenizer_identity(meta, str(tmp_path / n)) for n in "ab")
    assert a["sha256"] != b["sha256"] and not same_tokenizer(a, b) and same_tokenizer(a, dict(a))
    gpt2 = {"kind": "tiktoken", "name": "gpt2", "vocab_size": 50257}
    assert same_tokenizer(gpt2, {"kind": "tiktoken", "name": "gpt2", "vocab_size": 50257})
    assert not same_tokenizer(gpt2, {"kind": "tiktoken", "name": "cl100k_base", "vocab_size": 100277})
    assert not same_tokenizer(gpt2, a)
    with pytest.raises(ValueError, match=r"ck.pt was trained on tiktoken's gpt2 BPE but .*b holds a tokenizer.json"):
        checkpoint.check_tokenizer(gpt2, 50304, meta, str(tmp_path / "b"), "ck.pt")


def test_sample_and_evaluate_refuse_a_data_dir_of_another_tokenizer(char_data, few_run, tmp_path):
    other = char_dataset(tmp_path / "other", load_meta(char_data)["tokenizer"]["chars"][::-1])
    for script, extra in (("sample.py", ["--max_new_tokens=2", "--num_samples=1"]), ("evaluate.py", ["--task=loss"])):
        message = exit_message(in_process, script, f"--out_dir={few_run}", f"--data_dir={other}", "--device=cpu", *extra)
        assert str(few_run / "ckpt.pt") in message and str(other) in message, message
    # the dataset it trained on is fine
    assert "loss" in in_process("evaluate.py", f"--out_dir={few_run}", "--task=loss", "--device=cpu", "--eval_iters=1")


def test_checkpoint_without_a_tokenizer_record_still_loads(few_run, char_data, tmp_path):
    ckpt = checkpoint.load_checkpoint(str(few_run / "ckpt.pt"))
    old = {k: v for k, v in ckpt.items() if k != "tokenizer"}
    os.makedirs(tmp_path / "old")
    checkpoint.save_checkpoint(old, str(tmp_path / "old" / "ckpt.pt"))
    model, tok, run_ = checkpoint.load_model("resume", str(tmp_path / "old"), char_data)
    assert run_["tokenizer"] is None and tok.vocab_size == load_meta(char_data)["vocab_size"]
    wide = char_dataset(tmp_path / "wide", "".join(chr(0x100 + i) for i in range(300)))
    known = ckpt["model_args"]["vocab_size"]  # the dataset's, padded to a multiple of 64
    with pytest.raises(ValueError, match=rf"wide has 300 token ids but the model of .*ckpt.pt knows {known}"):
        checkpoint.load_model("resume", str(tmp_path / "old"), str(wide))


# ---------------------------------------------------------------- an occupied out_dir

def test_new_run_in_an_occupied_out_dir_stops_and_keeps_the_checkpoint(char_data, few_run, tmp_path):
    out = shutil.copytree(few_run, tmp_path / "run")
    before = (out / "ckpt.pt").read_bytes()
    for how in ("scratch", f"ckpt:{few_run}"):
        p = train(char_data, out, f"--init_from={how}")
        last = assert_one_line(p, out)
        assert "ckpt.pt at iter 2" in last and "--init_from=resume" in last and "--overwrite=True" in last
        assert (out / "ckpt.pt").read_bytes() == before
    p = train(char_data, out, "--overwrite=True", "--max_iters=4", "--eval_interval=4")
    assert p.returncode == 0, p.stderr[-2000:]
    assert checkpoint.load_checkpoint(str(out / "ckpt.pt"))["iter_num"] == 4
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert log[0]["iter"] == 0 and sum("wall_s" in r for r in log) == 1  # the new run's log only


def test_occupied_by_a_sharded_checkpoint(tmp_path):
    os.makedirs(tmp_path / "ckpt_dcp-00000005")
    torch.save({"iter_num": 5}, tmp_path / "ckpt_dcp-00000005" / "run.pt")
    os.symlink("ckpt_dcp-00000005", tmp_path / "ckpt_dcp")
    assert checkpoint.existing_run(str(tmp_path)).startswith("ckpt_dcp at iter 5, saved ")
    assert checkpoint.existing_run(str(tmp_path / "nothing")) is None


# ---------------------------------------------------------------- a failed write

def full_disk_after(n_bytes):
    """A torch.save that writes n_bytes of the checkpoint, then fails as a full disk does."""
    real = torch.save

    def save(obj, f, *a, **k):
        real({"partial": torch.zeros(1000)}, f)
        f.truncate(n_bytes)
        raise OSError(errno.ENOSPC, "No space left on device")
    return save


def test_failed_write_keeps_the_old_checkpoint_and_says_how_much_space(few_run, char_data, tmp_path, monkeypatch):
    out = shutil.copytree(few_run, tmp_path / "run")
    before = (out / "ckpt.pt").read_bytes()
    monkeypatch.setattr(torch, "save", full_disk_after(100))
    p = train(char_data, out, "--init_from=resume", "--max_iters=4", "--eval_interval=4")
    monkeypatch.undo()
    last = assert_one_line(p, out / "ckpt.pt")
    assert "No space left on device" in last and "it needs about 0.4 MB" in last and "B is free there" in last
    assert (out / "ckpt.pt").read_bytes() == before and not (out / "ckpt.pt.tmp").exists()
    assert checkpoint.load_checkpoint(str(out / "ckpt.pt"))["iter_num"] == 2


def test_save_checkpoint_failure_is_one_oserror(tmp_path, monkeypatch):
    path = str(tmp_path / "ckpt.pt")
    checkpoint.save_checkpoint({"model": {"w": torch.ones(3)}, "model_args": {}, "iter_num": 1}, path)
    monkeypatch.setattr(torch, "save", full_disk_after(10))
    with pytest.raises(OSError, match=r"needs about 4.0 MB and .* is free there; the previous save is untouched") as e:
        checkpoint.save_checkpoint({"model": {"w": torch.zeros(10**6)}, "model_args": {}, "iter_num": 2}, path)
    monkeypatch.undo()
    assert "\n" not in str(e.value) and os.listdir(tmp_path) == ["ckpt.pt"]
    assert checkpoint.load_checkpoint(path)["iter_num"] == 1
    assert checkpoint.tensor_bytes({"a": torch.zeros(10, dtype=torch.float16), "b": [torch.zeros(3)]}) == 32


def test_failed_sharded_write_keeps_the_last_whole_save(tmp_path, monkeypatch):
    """A rank's write fails inside torch.distributed.checkpoint (a full disk): the partial folder goes,
    the link still names the previous save, and the error is one line with the space it needs."""
    import torch.distributed.checkpoint.filesystem as dcp_files

    from model import GPT, GPTConfig
    from parallel import latest_sharded, load_run, save_sharded
    model = GPT(GPTConfig(n_layer=1, n_head=2, n_embd=16, block_size=8, vocab_size=11))
    optimizers = configure_optimizers(model, 0.1, 1e-3, (0.9, 0.95), "cpu")
    out = str(tmp_path)
    save_sharded(model, optimizers, {"iter_num": 10}, out)
    real = dcp_files._write_item

    def write_then_fail(*a, **k):  # the first item goes to disk, then the disk is full
        real(*a, **k)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(dcp_files, "_write_item", write_then_fail)
    with pytest.raises(OSError, match=r"ckpt_dcp-00000020 \(No space left on device\): it needs about 0.0 MB") as e:
        save_sharded(model, optimizers, {"iter_num": 20}, out)
    monkeypatch.undo()
    assert "\n" not in str(e.value) and "the previous save is untouched" in str(e.value)
    assert load_run(latest_sharded(out))["iter_num"] == 10
    assert sorted(f for f in os.listdir(out) if f.startswith("ckpt_dcp-")) == ["ckpt_dcp-00000010"]


# ---------------------------------------------------------------- a checkpoint carries its tokenizer

TEXT = "To be, or not to be, that is the question: whether 'tis nobler in the mind to suffer.\n" * 20


def dataset_of_kind(folder, kind):
    """A small dataset of TEXT with a character vocabulary, tiktoken's GPT-2 BPE, or a tokenizer.json."""
    os.makedirs(folder)
    if kind == "char":
        chars = "".join(sorted(set(TEXT)))
        spec, ids = {"kind": "char", "chars": chars}, [chars.index(c) for c in TEXT]
        vocab = len(chars)
    elif kind == "tiktoken":
        import tiktoken
        spec, ids, vocab = {"kind": "tiktoken", "name": "gpt2"}, tiktoken.get_encoding("gpt2").encode(TEXT), 50257
    else:
        from tokenizers import Tokenizer, models, pre_tokenizers
        words = sorted(set(TEXT.replace("\n", " ").split(" ")) - {""})
        tok = Tokenizer(models.WordLevel({"<|endoftext|>": 0, "[UNK]": 1, **{w: i + 2 for i, w in enumerate(words)}},
                                         unk_token="[UNK]"))
        tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
        tok.save(str(folder / "tokenizer.json"))
        spec, ids, vocab = {"kind": "hf", "file": "tokenizer.json"}, tok.encode(TEXT).ids, tok.get_vocab_size()
    write_dataset(str(folder), ids, ids[: len(ids) // 2], tokenizer=spec, vocab_size=vocab)
    return folder


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["char", "tiktoken", "hf"])
def test_sample_and_export_need_only_the_checkpoint(kind, tmp_path):
    data, out = dataset_of_kind(tmp_path / "data", kind), tmp_path / "run"
    p = train(data, out, "--block_size=16")
    assert p.returncode == 0, p.stderr[-3000:]
    start = "To be" if kind != "hf" else "To be, or"
    args = [f"--out_dir={out}", "--device=cpu", "--max_new_tokens=6", "--num_samples=2", f"--start={start}"]
    before = in_process("sample.py", *args)
    in_process("export.py", f"--out_dir={out}", f"--export_dir={tmp_path / 'hf1'}")
    shutil.move(str(data), str(tmp_path / "moved"))  # the dataset folder is gone
    assert in_process("sample.py", *args) == before and before.count("---------------") == 2
    in_process("export.py", f"--out_dir={out}", f"--export_dir={tmp_path / 'hf2'}")
    files = sorted(os.listdir(tmp_path / "hf1"))
    assert files == sorted(os.listdir(tmp_path / "hf2"))
    assert {"char": "meta.json", "tiktoken": "vocab.json", "hf": "tokenizer.json"}[kind] in files
    for name in files:
        assert (tmp_path / "hf1" / name).read_bytes() == (tmp_path / "hf2" / name).read_bytes(), name
    if kind == "hf":  # the very file the dataset held
        assert (tmp_path / "hf2" / "tokenizer.json").read_bytes() == (tmp_path / "moved" / "tokenizer.json").read_bytes()


def test_export_refuses_a_data_dir_of_another_tokenizer(char_data, few_run, tmp_path):
    other = char_dataset(tmp_path / "other", load_meta(char_data)["tokenizer"]["chars"][::-1])
    message = exit_message(in_process, "export.py", f"--out_dir={few_run}", f"--data_dir={other}",
                           f"--export_dir={tmp_path / 'hf'}")
    assert str(few_run / "ckpt.pt") in message and str(other) in message, message
    assert not (tmp_path / "hf").exists()


def test_token_ids_past_the_vocabulary_are_refused_before_the_cast(tmp_path):
    from data.writer import TokenWriter
    with pytest.raises(DataError, match=r"token id 70000 is outside the vocabulary of 50257 ids of tiktoken's gpt2"):
        with TokenWriter(str(tmp_path / "w"), 50257, {"kind": "tiktoken", "name": "gpt2"}) as w:
            w.write(np.array([5, 70000, 7, 9]), np.array([4]))  # as uint16, 70000 would be 4464
    assert not any(f.endswith(".bin") for f in os.listdir(tmp_path / "w"))
    with pytest.raises(DataError, match="token id 300 is outside the vocabulary of 65 ids"):
        write_dataset(str(tmp_path / "d"), np.array([1, 300]), np.array([1]), {"kind": "char", "chars": "x" * 65}, 65)
    with pytest.raises(DataError, match="token id -1"):
        write_dataset(str(tmp_path / "d"), np.array([1, -1]), np.array([1]), {"kind": "char", "chars": "x" * 65}, 65)


# ---------------------------------------------------------------- --overwrite leaves nothing of the old run

@pytest.mark.slow
def test_overwrite_deletes_the_old_runs_kept_checkpoints(char_data, tmp_path):
    out = tmp_path / "run"
    assert train(char_data, out, "--max_iters=20", "--eval_interval=10", "--keep_last=2").returncode == 0
    assert {"ckpt-00000010.pt", "ckpt-00000020.pt"} <= set(os.listdir(out))
    (out / "ckpt.answers.txt").write_text("an old model's answers\n")
    p = train(char_data, out, "--overwrite=True", "--max_iters=10", "--eval_interval=5", "--keep_last=2",
              "--n_embd=48")
    assert p.returncode == 0, p.stderr[-3000:]
    assert "overwrite: deleted the old run's" in p.stdout and "ckpt-00000020.pt" in p.stdout
    kept = sorted(f for f in os.listdir(out) if f.startswith("ckpt"))
    assert kept == ["ckpt-00000005.pt", "ckpt-00000010.pt", "ckpt.pt"], kept
    for f in kept:
        assert checkpoint.load_checkpoint(str(out / f))["model_args"]["n_embd"] == 48


def test_pruning_counts_only_this_runs_saves(tmp_path):
    stale = tmp_path / "ckpt-00000020.pt"  # a later iteration: not this run's past
    stale.write_bytes(b"old")
    for it in (5, 10, 15):
        checkpoint.save_checkpoint({"iter_num": it, "w": torch.zeros(1)}, str(tmp_path / "ckpt.pt"), keep_last=2)
    names = sorted(f for f in os.listdir(tmp_path) if f.startswith("ckpt-"))
    assert names == ["ckpt-00000010.pt", "ckpt-00000015.pt", "ckpt-00000020.pt"]


def test_kept_checkpoints_without_a_ckpt_pt_still_occupy_the_folder(tmp_path):
    (tmp_path / "ckpt-00000020.pt").write_bytes(b"old")
    assert "ckpt-00000020.pt" in checkpoint.existing_run(str(tmp_path))


def test_clear_run_deletes_the_runs_files_only(tmp_path):
    for d in ("ckpt_dcp-00000005", "ckpt_dcp-00000010-1"):
        os.makedirs(tmp_path / d)
        (tmp_path / d / "run.pt").write_bytes(b"x")
    os.symlink("ckpt_dcp-00000010-1", tmp_path / "ckpt_dcp")
    for f in ("ckpt.pt", "ckpt-00000005.pt", "log.jsonl", "config.json", "dev.ckpt-00000005.answers.txt",
              "notes.txt", "input.txt"):
        (tmp_path / f).write_text("x")
    gone = checkpoint.clear_run(str(tmp_path))
    assert sorted(os.listdir(tmp_path)) == ["input.txt", "notes.txt"]
    assert len(gone) == 8 and "ckpt_dcp" in gone


def test_a_write_stopped_part_way_leaves_no_meta_that_describes_other_bins(tmp_path, monkeypatch):
    """meta.json is the last file a prepare writes, and the old one goes first: a prepare stopped
    while it writes a bin leaves a folder that asks to be prepared again, never an old meta.json
    beside new bins; and meta.json itself is replaced whole or not at all."""
    import data.common
    folder, spec = str(tmp_path / "d"), {"kind": "char", "chars": "abcdefg"}
    write_dataset(folder, np.arange(100) % 7, np.arange(50) % 7, spec, 7, streams={"side": np.arange(30) % 7})
    assert load_meta(folder)["side_tokens"] == 30 and os.path.getsize(os.path.join(folder, "side.bin")) == 60
    stop_writing_at(monkeypatch, "side.bin")
    with pytest.raises(KeyboardInterrupt):  # new train.bin (200 tokens) written, then stopped
        write_dataset(folder, np.arange(200) % 7, np.arange(50) % 7, spec, 7, streams={"side": np.arange(40) % 7})
    with pytest.raises(FileNotFoundError, match="meta.json is missing; prepare"):
        load_meta(folder)
    monkeypatch.undo()
    meta = write_dataset(folder, np.arange(200) % 7, np.arange(50) % 7, spec, 7, streams={"side": np.arange(40) % 7})
    assert load_meta(folder) == meta and meta["train_tokens"] == 200 and meta["side_tokens"] == 40

    def dump_half(obj, f, **k):
        f.write('{"vocab_size": ')
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(data.common.json, "dump", dump_half)
    with pytest.raises(OSError):
        data.common.write_meta(folder, dict(meta, train_tokens=1))
    monkeypatch.undo()
    assert load_meta(folder) == meta  # the old meta.json, whole


def test_a_streamed_prepare_stopped_while_renaming_leaves_no_meta(tmp_path, monkeypatch):
    """TokenWriter renames train.bin, then val.bin, into place: stopped between the two, the folder
    has no meta.json (not the old one beside a new train.bin and the old val.bin)."""
    from data.writer import TokenWriter
    folder, spec = str(tmp_path / "w"), {"kind": "char", "chars": "abcdefg"}

    def prepare(n):
        with TokenWriter(folder, 7, spec) as w:
            w.write(np.arange(n) % 7, np.array([n // 2, n - n // 2]))
            return w.finish(spec, val_docs=1)
    meta = prepare(100)
    assert load_meta(folder) == meta and meta["train_tokens"] == 50
    real = os.replace

    def stopped_at_val(src, dst):
        if dst.endswith("val.bin"):
            raise KeyboardInterrupt
        real(src, dst)
    monkeypatch.setattr(os, "replace", stopped_at_val)
    with pytest.raises(KeyboardInterrupt):
        prepare(300)
    monkeypatch.undo()
    with pytest.raises(FileNotFoundError, match="meta.json is missing; prepare"):
        load_meta(folder)
    assert prepare(300)["train_tokens"] == 150 and load_meta(folder)["val_tokens"] == 150
