"""train.py: the character and GPT-2 BPE datasets it reads, the learning-rate schedule, a
run that learns, checkpoints and samples, refusals, bf16, torch.compile, wandb offline, and
the CPU configs' bf16 choice."""

import json
import os
import re

import numpy as np
import pytest
import torch

from conftest import CHAR_RUN_ITERS, TINY_TRAIN, copy_run, exit_message, fixture, in_process, quietly, run
from data.common import load_meta, open_tokens
from data.tokenizer import Tokenizer
from checkpoint import load_checkpoint
from optim import eta_seconds, get_lr

TINY = TINY_TRAIN  # 2 layers, 2 heads, 32 wide; test_robust.py uses it too


def train(char_data, out, *extra, check=True):
    return run("train.py", f"--data_dir={char_data}", f"--out_dir={out}", *TINY, *extra, check=check)


def shakespeare():
    with open(fixture("tinyshakespeare.txt"), encoding="utf-8") as f:
        return f.read()


def test_prepare_char_counts_and_roundtrip(char_data):
    meta = load_meta(char_data)
    text = shakespeare()
    n = int(0.9 * len(text))  # the first 90% of the characters train
    assert (meta["vocab_size"], meta["dtype"], meta["train_tokens"], meta["val_tokens"]) == (
        len(set(text)), "uint16", n, len(text) - n)
    assert meta["tokenizer"]["chars"] == "".join(sorted(set(text)))
    tok = Tokenizer.from_meta(meta)
    ids = np.concatenate([open_tokens(char_data, "train", meta), open_tokens(char_data, "val", meta)])
    assert tok.decode(ids) == text
    assert tok.encode(text[:1000]) == ids[:1000].tolist()


def test_prepare_gpt2_bpe(tmp_path):
    import tiktoken

    from data.shakespeare.prepare import main
    quietly(main, [f"--input={fixture('tinyshakespeare.txt')}", f"--out_dir={tmp_path}"])
    meta = load_meta(str(tmp_path))
    text = shakespeare()
    n = int(0.9 * len(text))  # the text is split 90/10, then each part encoded
    enc = tiktoken.get_encoding("gpt2")
    train_ids, val_ids = enc.encode_ordinary(text[:n]), enc.encode_ordinary(text[n:])
    assert (meta["train_tokens"], meta["val_tokens"], meta["vocab_size"]) == (len(train_ids), len(val_ids), 50257)
    assert open_tokens(str(tmp_path), "train", meta).tolist() == train_ids
    tok = Tokenizer.from_meta(meta)
    assert tok.decode(open_tokens(str(tmp_path), "val", meta)) == text[n:]


def test_lr_schedule():
    kw = dict(learning_rate=1.0, min_lr=0.1, warmup_iters=10, lr_decay_iters=110)
    assert get_lr(0, **kw) == pytest.approx(1 / 11)
    assert get_lr(4, **kw) == pytest.approx(5 / 11)
    assert get_lr(10, **kw) == pytest.approx(1.0)
    assert get_lr(60, **kw) == pytest.approx(0.55)  # half way down the cosine
    assert get_lr(110, **kw) == get_lr(500, **kw) == 0.1
    assert get_lr(0, **kw, use_warmup=False) == 1.0
    assert get_lr(55, **kw, use_warmup=False) == pytest.approx(0.55)
    assert get_lr(5, **kw, use_cosine=False) == pytest.approx(6 / 11)
    assert get_lr(100, **kw, use_cosine=False) == 1.0


@pytest.mark.slow
def test_train_lowers_loss_checkpoints_and_samples(char_run):
    out = char_run["out_dir"]  # TINY, --max_iters=60 --eval_interval=30
    evals = [json.loads(line) for line in open(os.path.join(out, "log.jsonl")) if "val_loss" in line]
    assert evals[0]["iter"] == 0 and evals[-1]["iter"] == CHAR_RUN_ITERS == 60
    assert evals[-1]["val_loss"] < evals[0]["val_loss"] - 0.5, char_run["stdout"]
    ckpt = load_checkpoint(os.path.join(out, "ckpt.pt"))
    assert ckpt["iter_num"] == 60 and set(ckpt) >= {"model", "optimizer", "model_args", "iter_num", "best_val_loss", "config"}
    cfg = json.load(open(os.path.join(out, "config.json")))
    assert cfg["model_args"]["n_layer"] == 2 and cfg["config"]["max_iters"] == 60
    s = run("sample.py", f"--out_dir={out}", "--num_samples=2", "--max_new_tokens=40", "--start=ROMEO:", "--device=cpu")
    samples = [x for x in s.stdout.split("---------------\n") if x.strip()]
    assert len(samples) == 2 and all(x.startswith("ROMEO:") and len(x) >= 46 for x in samples)
    streamed = in_process("sample.py", f"--out_dir={out}", "--num_samples=1", "--max_new_tokens=40", "--start=ROMEO:",
                          "--stream=True")
    assert streamed.startswith(samples[0].strip("\n")[:46])  # same seed, same text, printed as it comes


@pytest.mark.slow
def test_log_has_val_ppl_and_the_achieved_tflops(char_run):
    """Each evaluation logs val_ppl (exp of val_loss, also what wandb gets); each step logs and prints
    the achieved TFLOP/s, model FLOPs per token times tokens/s, which needs no peak: on a CPU mfu is null."""
    import math

    from model import GPT, GPTConfig
    records = [json.loads(line) for line in open(os.path.join(char_run["out_dir"], "log.jsonl"))]
    evals = [r for r in records if "val_loss" in r]
    assert evals and all(r["val_ppl"] == pytest.approx(math.exp(r["val_loss"])) for r in evals)
    steps = [r for r in records if "train_loss" in r]
    per_token = GPT(GPTConfig(**load_checkpoint(os.path.join(char_run["out_dir"], "ckpt.pt"))["model_args"])).flops_per_token()
    assert len(steps) == CHAR_RUN_ITERS and all(r["mfu"] is None for r in steps)
    for r in steps:
        assert r["tflops"] == pytest.approx(per_token * r["tok_per_s"] / 1e12, rel=1e-6)
    lines = [line for line in char_run["stdout"].splitlines() if line.startswith("iter ")]
    assert len(lines) == CHAR_RUN_ITERS and all(re.search(r", [0-9.e+-]+ TFLOP/s", line) for line in lines), lines[:2]


def test_log_line_shows_percent_done_and_an_eta(char_run):
    """Each iter line ends with the share of max_iters done and an ETA, as H:MM:SS: the iterations
    left times the median of the last 20 steps' times (log.jsonl's dt_ms; not the first step after
    a start, which may compile), plus the evaluations left (every 30 iterations and the last) at
    their measured time. The first line has no step to go by yet."""
    lines = [line for line in char_run["stdout"].splitlines() if line.startswith("iter ")]
    log = open(os.path.join(char_run["out_dir"], "log.jsonl")).read().splitlines()
    steps = [json.loads(line) for line in log if '"train_loss"' in line]
    assert len(lines) == len(steps) == CHAR_RUN_ITERS == 60
    assert lines[0].endswith(", 1.7% done, ETA ?") and steps[0]["eta_s"] is None
    per_eval = {}  # the evaluations' share of each ETA, per evaluation measured so far
    for i, (line, rec) in enumerate(zip(lines, steps)):
        if i == 0:
            continue
        recent = sorted(r["dt_ms"] / 1000 for r in steps[max(1, i - 19):i + 1])
        left = (60 - rec["iter"]) * recent[len(recent) // 2]
        evals = eta_seconds(rec["iter"], 60, 30, 0.0, 1.0)
        assert evals == (2 if rec["iter"] <= 30 else 1)
        assert rec["eta_s"] > left  # an evaluation is still to come on every line, the last included
        per_eval.setdefault(rec["iter"] <= 30, []).append((rec["eta_s"] - left) / evals)
        s = int(rec["eta_s"])
        assert line.endswith(f", {100 * rec['iter'] / 60:.1f}% done, ETA {s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}")
        assert rec["progress"] == rec["iter"] / 60
    for costs in per_eval.values():  # one measured cost per evaluation, the same on every line it applies to
        assert max(costs) == pytest.approx(min(costs), rel=1e-6, abs=1e-9) and min(costs) > 0


def test_eta_counts_the_evaluations_still_to_come():
    # nanoGPT's Shakespeare ratio: an evaluation every 250 iterations, 5000 in all
    assert eta_seconds(25, 5000, 250, 1.0, 0.0) == 4975
    assert eta_seconds(25, 5000, 250, 0.0, 1.0) == 20  # at 250, 500, ..., 5000
    assert eta_seconds(250, 5000, 250, 0.0, 1.0) == 20  # the step that reached 250: its evaluation is next
    assert eta_seconds(251, 5000, 250, 0.0, 1.0) == 19
    assert eta_seconds(5000, 5000, 250, 1.0, 7.0) == 7.0  # the last step done: the final evaluation is left
    assert eta_seconds(100, 100, 250, 1.0, 3.0) == 3.0  # max_iters not a multiple: one at the end


@pytest.mark.slow
def test_resume_rejects_a_different_model(char_data, char_run, tmp_path):
    out = copy_run(char_run, tmp_path / "r")
    p = train(char_data, out, "--init_from=resume", "--n_layer=3", check=False)
    assert p.returncode != 0 and "n_layer=3 (checkpoint: 2)" in p.stderr


@pytest.mark.slow
def test_bad_inputs_fail_with_one_line():
    p = run("train.py", "--dataset=nonexistent", "--device=cpu", check=False)
    assert p.returncode != 0 and "python data/nonexistent/prepare.py" in p.stderr
    p = run("train.py", "--lerning_rate=1", check=False)
    assert p.returncode == 2 and "--learning_rate" in p.stderr and len(p.stderr.strip().splitlines()) == 1


def test_sample_names_a_missing_or_broken_checkpoint(tmp_path):
    assert "no checkpoint" in exit_message(in_process, "sample.py", f"--out_dir={tmp_path}")
    (tmp_path / "ckpt.pt").write_bytes(b"not a checkpoint")
    assert "ckpt.pt" in exit_message(in_process, "sample.py", f"--out_dir={tmp_path}")  # a sentence, no traceback


@pytest.mark.slow
def test_ckpt_interval_saves_whatever_val_does_and_once_at_an_evaluation(char_data, tmp_path):
    """At lr 0 val stays as it was, so only ckpt_interval saves, at 2 and at 4, where the interval
    and the evaluation fall together. At a learning rate val improves at 4, and the checkpoint is
    still written once there, with the evaluation's val loss."""
    common = ["--always_save_checkpoint=False", "--max_iters=4", "--eval_interval=4", "--ckpt_interval=2",
              "--keep_last=3", "--eval_iters=1"]
    for lr, reasons in (("0", ["iter 2 (ckpt_interval)", "iter 4 (ckpt_interval)"]),
                        ("3e-3", ["iter 2 (ckpt_interval)", "iter 4 (val improved)"])):
        out = str(tmp_path / lr)
        p = train(char_data, out, f"--learning_rate={lr}", f"--min_lr={lr}", "--warmup_iters=0", *common)
        saves = [line.split(" at ")[-1] for line in p.stdout.splitlines() if line.startswith("saved checkpoint")]
        assert saves == reasons, p.stdout
        assert sorted(f for f in os.listdir(out) if f.startswith("ckpt-")) == ["ckpt-00000002.pt", "ckpt-00000004.pt"]
        evals = [json.loads(line) for line in open(os.path.join(out, "log.jsonl")) if "val_loss" in line]
        assert load_checkpoint(os.path.join(out, "ckpt.pt"))["best_val_loss"] == min(e["val_loss"] for e in evals)


def test_bf16_autocast_on_cpu(char_data, tmp_path):
    p = train(char_data, str(tmp_path / "bf"), "--max_iters=3", "--eval_interval=3", "--eval_iters=1",
              "--dtype=bfloat16")
    assert "bfloat16" in p.stdout and "iter 3:" in p.stdout


@pytest.mark.slow
def test_compile_on_cpu(char_data, tmp_path):
    p = train(char_data, str(tmp_path / "c"), "--max_iters=3", "--eval_interval=3", "--eval_iters=1", "--compile=True")
    assert "compiling" in p.stdout and "iter 3:" in p.stdout


@pytest.mark.slow
def test_wandb_offline_and_eval_only(char_data, tmp_path, network_attempts):
    out = tmp_path / "w"
    env = dict(os.environ, WANDB_MODE="offline", WANDB_DIR=str(tmp_path), WANDB_SILENT="true")
    run("train.py", f"--data_dir={char_data}", f"--out_dir={out}", *TINY, "--max_iters=2", "--eval_interval=2",
        "--wandb_log=True", "--wandb_run_name=t", env=env)
    runs = list((tmp_path / "wandb").glob("offline-run-*"))
    assert len(runs) == 1 and any(runs[0].rglob("*.wandb"))
    assert b"val_ppl" in next(runs[0].rglob("*.wandb")).read_bytes()  # the evaluations' perplexity goes to wandb too
    p = run("train.py", f"--data_dir={char_data}", f"--out_dir={out}", *TINY, "--init_from=resume", "--eval_only=True",
            env=env)  # the resume keeps wandb_log=True from the checkpoint
    assert "step 2:" in p.stdout and "iter 3" not in p.stdout
    assert network_attempts() == []  # offline means offline
    # online without an API key (a fresh machine): one line saying what to do, not a traceback
    no_key = {k: v for k, v in env.items() if k != "WANDB_API_KEY"}
    no_key.update(WANDB_MODE="online", HOME=str(tmp_path), NETRC=str(tmp_path / "no.netrc"))
    p = run("train.py", f"--data_dir={char_data}", f"--out_dir={tmp_path / 'w2'}", *TINY, "--max_iters=1",
            "--wandb_log=True", env=no_key, check=False, timeout=120)
    assert p.returncode != 0 and "Traceback" not in p.stderr
    assert "error: wandb could not start" in p.stderr and "WANDB_MODE=offline" in p.stderr
    network_attempts()  # online, wandb looks its servers up before it asks for a key: refused here, as unplugged


def config_values(path):
    """What a config file sets, checked against train.py's keys as `python train.py <path>` does."""
    import configurator
    import train as train_module
    g = {k: getattr(train_module, k) for k in train_module.CONFIG_KEYS}
    g["AUTO_KEYS"] = train_module.AUTO_KEYS
    return configurator.apply_overrides(g, [path])


def test_cpu_configs_use_bf16_only_where_the_cpu_has_it(monkeypatch):
    import device
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    monkeypatch.chdir(root)
    sr = config_values("config/speedrun_shakespeare_char_cpu.py")
    assert (sr["dtype"], sr["optimizer"], sr["attn_impl"]) == ("auto", "muon", "sdpa")  # bf16 only with bf16 units
    sr = config_values("config/speedrun_shakespeare_char_cpu_bf16.py")
    assert (sr["dtype"], sr["optimizer"], sr["attn_impl"]) == ("bfloat16", "muon", "manual")
    assert config_values("config/train_shakespeare_char_cpu.py")["dtype"] == "float32"  # the quickstart
    for name in ("birthplace_pretrain_cpu.py", "birthplace_finetune_cpu.py"):
        dtype = config_values(f"config/{name}")["dtype"]
        for has in (True, False):  # 'auto' on a CPU: bf16 only with bf16 units
            assert device.resolve_dtype(dtype, "cpu", has_cpu_bf16=has) == ("bfloat16" if has else "float32")
            monkeypatch.setattr(device, "cpu_has_bf16", lambda: has)
            assert device.resolve_dtype(dtype, "cpu") == ("bfloat16" if has else "float32")
    assert device.resolve_dtype("auto", "mps") == "float32" and device.resolve_dtype("float16", "cpu") == "float16"


def test_cpu_has_bf16_reads_torch_probes_and_warns(monkeypatch):
    import device
    for amx, avx512 in ((False, False), (True, False), (False, True)):
        monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx)  # raising=True: the probe exists
        monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: avx512)
        assert device.cpu_has_bf16() == (amx or avx512)
    assert "--dtype=float32" in device.bf16_warning("bfloat16", has_bf16=False)
    assert device.bf16_warning("float32", has_bf16=False) is None
    assert device.bf16_warning("bfloat16", has_bf16=True) is None

