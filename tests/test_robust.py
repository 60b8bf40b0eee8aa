"""Runs that survive: atomic checkpoints, signals, the NaN guard, damaged files, bad input, DDP."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

import checkpoint
from conftest import ROOT, TINY_TRAIN, copy_run, run
from data.writer import write_dataset
from model import GPT, GPTConfig

ARGS = TINY_TRAIN + ["--dropout=0.0"]


def train_run(data, out, *extra, check=True):
    return run("train.py", f"--data_dir={data}", f"--out_dir={out}", *ARGS, *extra, check=check)


def test_interrupted_save_keeps_the_old_checkpoint(tmp_path, monkeypatch):
    path = str(tmp_path / "ckpt.pt")
    checkpoint.save_checkpoint({"model": {"w": torch.ones(3)}, "model_args": {}, "iter_num": 1}, path)

    def crash(src, dst):
        raise KeyboardInterrupt  # the process dies between writing the temp file and renaming it

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(KeyboardInterrupt):
        checkpoint.save_checkpoint({"model": {"w": torch.zeros(3)}, "model_args": {}, "iter_num": 2}, path)
    monkeypatch.undo()
    ckpt = checkpoint.load_checkpoint(path)
    assert ckpt["iter_num"] == 1 and torch.equal(ckpt["model"]["w"], torch.ones(3))


def test_keep_last(tmp_path):
    path = str(tmp_path / "ckpt.pt")
    for it in range(1, 6):
        checkpoint.save_checkpoint({"model": {}, "model_args": {}, "iter_num": it}, path, keep_last=2)
    assert sorted(os.listdir(tmp_path)) == ["ckpt-00000004.pt", "ckpt-00000005.pt", "ckpt.pt"]
    assert checkpoint.load_checkpoint(str(tmp_path / "ckpt-00000004.pt"))["iter_num"] == 4


def test_damaged_checkpoint_is_named(tmp_path):
    torch.manual_seed(0)
    model = GPT(GPTConfig(n_layer=2, n_head=2, n_embd=32, block_size=32, vocab_size=65))
    path = tmp_path / "ckpt.pt"
    checkpoint.save_checkpoint({"model": model.state_dict(), "model_args": {}, "iter_num": 2}, str(path))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])  # truncated, as by a full disk
    with pytest.raises(RuntimeError, match="ckpt.pt") as e:
        checkpoint.load_checkpoint(str(path))
    assert "cannot read checkpoint" in str(e.value) and len(str(e.value)) < 300  # one readable line
    path.write_bytes(b"")  # empty, as by a crash before the first byte
    with pytest.raises(RuntimeError, match=r"ckpt.pt \(\w+"):
        checkpoint.load_checkpoint(str(path))


@pytest.mark.slow
def test_resume_from_a_damaged_checkpoint_is_one_line(char_data, char_run, tmp_path):
    out = copy_run(char_run, tmp_path / "run")
    ckpt = tmp_path / "run" / "ckpt.pt"
    ckpt.write_bytes(ckpt.read_bytes()[: ckpt.stat().st_size // 2])  # truncated
    p = train_run(char_data, out, "--init_from=resume", check=False)
    assert p.returncode != 0 and "cannot read checkpoint" in p.stderr and "Traceback" not in p.stderr
    assert len(p.stderr.strip().splitlines()[-1]) < 300  # one readable line, not torch's whole advice


@pytest.mark.slow
def test_sigterm_saves_a_resumable_checkpoint(char_data, tmp_path):
    out = tmp_path / "run"
    cmd = [sys.executable, "train.py", f"--data_dir={char_data}", f"--out_dir={out}", *ARGS,
           "--max_iters=100000", "--eval_interval=100000"]
    p = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    log = out / "log.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and not (log.exists() and log.read_text().count("train_loss") >= 3):
        time.sleep(0.2)
    p.send_signal(signal.SIGTERM)
    stdout, stderr = p.communicate(timeout=120)
    assert p.returncode == 0, stderr
    assert "SIGTERM" in stderr and "stopped at iter" in stdout
    ckpt = checkpoint.load_checkpoint(str(out / "ckpt.pt"))
    stopped = ckpt["iter_num"]
    assert 3 <= stopped < 100000
    r = train_run(char_data, str(out), "--init_from=resume", f"--max_iters={stopped + 2}", "--eval_interval=100000")
    assert f"iter {stopped + 1}:" in r.stdout


@pytest.mark.slow
def test_nonfinite_loss_stops_and_keeps_the_checkpoint(char_data, char_run, tmp_path):
    out = copy_run(char_run, tmp_path / "run")
    before = checkpoint.load_checkpoint(os.path.join(out, "ckpt.pt"))
    end = before["iter_num"] + 50
    # an absurd learning rate makes the weights infinite after one step: the next loss is NaN
    p = train_run(char_data, out, "--init_from=resume", f"--max_iters={end}", "--eval_interval=1",
                  "--learning_rate=1e30", "--grad_clip=0.0", "--use_warmup=False", check=False)
    assert p.returncode == 1 and "at iter" in p.stderr and "loss is nan" in p.stderr.lower()
    after = checkpoint.load_checkpoint(os.path.join(out, "ckpt.pt"))
    assert all(torch.isfinite(v).all() for v in after["model"].values())
    assert after["iter_num"] >= before["iter_num"]
    p = train_run(char_data, out, "--init_from=resume", f"--max_iters={end}", "--eval_interval=100",
                  "--learning_rate=1e30", "--grad_clip=0.0", "--use_warmup=False", "--skip_nonfinite=2", check=False)
    assert p.returncode == 1 and p.stderr.count("skipped the step") == 2


@pytest.mark.slow
def test_bad_inputs(char_data, tmp_path):
    tiny = tmp_path / "tiny"
    write_dataset(str(tiny), np.arange(1000) % 50, np.arange(20) % 50, {"kind": "char", "chars": "x" * 50}, 50)
    p = train_run(str(tiny), str(tmp_path / "o"), check=False)  # block_size 32 > 20 val tokens
    assert p.returncode != 0 and "val split" in p.stderr and "lower --block_size" in p.stderr
    p = run("-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "train.py",
            f"--data_dir={char_data}", f"--out_dir={tmp_path / 'd'}", *ARGS, "--gradient_accumulation_steps=3", check=False)
    assert p.returncode != 0 and "not divisible" in p.stderr


@pytest.mark.slow
def test_ddp_equals_one_process(char_data, tmp_path):
    """2 gloo ranks with 2 micro-steps each == 1 process with 4 micro-steps: the same batches,
    split between the ranks (so each rank reads different ones), the same update."""
    common = [f"--data_dir={char_data}", *ARGS, "--max_iters=3", "--eval_interval=3", "--gradient_accumulation_steps=4"]
    one, two = tmp_path / "one", tmp_path / "two"
    run("train.py", f"--out_dir={one}", *common)
    p = run("-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "train.py", f"--out_dir={two}", *common)
    assert "2 process(es)" in p.stdout and "iter 3:" in p.stdout  # two gloo ranks trained to the end
    assert p.stdout.count("step 0:") == 1  # only rank 0 prints
    assert checkpoint.load_checkpoint(str(two / "ckpt.pt"))["iter_num"] == 3
    a, b = checkpoint.load_checkpoint(str(one / "ckpt.pt"))["model"], checkpoint.load_checkpoint(str(two / "ckpt.pt"))["model"]
    for k in a:
        assert torch.allclose(a[k], b[k], atol=1e-5), k
    la = [json.loads(x)["train_loss"] for x in open(one / "log.jsonl") if "train_loss\"" in x]
    lb = [json.loads(x)["train_loss"] for x in open(two / "log.jsonl") if "train_loss\"" in x]
    assert np.allclose(la, lb, atol=1e-5) and len(la) == 3
