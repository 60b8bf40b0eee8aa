"""train.py's loop where a run goes wrong, stops or resumes: a non-finite gradient behind a finite
loss, --eval_only on a resumed run, target_val_loss met at the first evaluation, one eval line per
iteration across a resume, repeated stop signals, and the random streams of DDP ranks that resume
a one-process checkpoint."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from checkpoint import load_checkpoint
from conftest import ROOT, TINY_TRAIN, run
from model import GPT

ARGS = TINY_TRAIN + ["--dropout=0.0"]


def train(data, out, *extra, check=True):
    return run("train.py", f"--data_dir={data}", f"--out_dir={out}", *ARGS, *extra, check=check)


class NaNGradient(torch.autograd.Function):
    """The identity forward; backward, a NaN gradient: a finite loss with non-finite gradients."""

    @staticmethod
    def forward(ctx, x):
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        return torch.full_like(grad, float("nan"))


@pytest.mark.slow
def test_a_finite_loss_with_nonfinite_gradients_is_a_skipped_step(char_data, tmp_path, monkeypatch):
    """The second step's gradients are NaN, its loss is not. Clipping by the NaN norm would make
    every weight NaN, and every later loss; it is a non-finite step like a NaN loss instead."""
    real, steps = GPT.forward, []

    def forward(self, idx, targets=None, **kw):
        logits, loss = real(self, idx, targets, **kw)
        if targets is not None and torch.is_grad_enabled():  # a training step, not an evaluation
            steps.append(1)
            if len(steps) == 2:
                loss = NaNGradient.apply(loss)
        return logits, loss

    monkeypatch.setattr(GPT, "forward", forward)  # train.py runs in this process (conftest.run)
    out = tmp_path / "run"
    p = train(char_data, out, "--max_iters=4", "--eval_interval=4", "--skip_nonfinite=1", check=False)
    assert p.returncode == 0, p.stderr
    assert p.stderr.count("skipped the step") == 1 and "gradients are not finite at iter 1" in p.stderr
    ckpt = load_checkpoint(str(out / "ckpt.pt"))
    assert ckpt["iter_num"] == 4 and all(torch.isfinite(v).all() for v in ckpt["model"].values())


@pytest.mark.slow
def test_eval_only_never_saves_and_is_never_inherited(char_data, tmp_path):
    out = tmp_path / "run"
    train(char_data, out, "--max_iters=4", "--eval_interval=4")
    before = (out / "ckpt.pt").read_bytes()
    p = run("train.py", f"--out_dir={out}", "--init_from=resume", "--eval_only=True")
    assert "step 4:" in p.stdout and "saved" not in p.stdout
    assert (out / "ckpt.pt").read_bytes() == before  # the checkpoint, its config included, is the run's
    p = run("train.py", f"--out_dir={out}", "--init_from=resume", "--max_iters=6")
    assert "iter 6:" in p.stdout and load_checkpoint(str(out / "ckpt.pt"))["iter_num"] == 6
    ckpt = torch.load(out / "ckpt.pt", weights_only=True)  # a checkpoint an older train.py saved with eval_only
    ckpt["config"]["eval_only"] = True
    torch.save(ckpt, out / "ckpt.pt")
    p = run("train.py", f"--out_dir={out}", "--init_from=resume", "--max_iters=8")
    assert "iter 8:" in p.stdout


@pytest.mark.slow
def test_target_val_loss_met_at_iteration_0_saves(char_data, tmp_path):
    out = tmp_path / "run"
    p = train(char_data, out, "--max_iters=10", "--eval_interval=5", "--target_val_loss=100")
    assert "at iter 0: stopping" in p.stdout
    assert load_checkpoint(str(out / "ckpt.pt"))["iter_num"] == 0


def test_evaluation_at_finds_an_evaluation_in_the_log(tmp_path):
    from checkpoint import evaluation_at

    assert evaluation_at(str(tmp_path), 4) is None  # no log: a run whose log was lost evaluates again
    (tmp_path / "log.jsonl").write_text('{"iter": 4, "train_loss": 1.0}\n{"iter": 2, "val_loss": 1.0}\n'
                                        '{"iter": 4, "val_loss": 0.9')  # a crash cut the last line short
    assert evaluation_at(str(tmp_path), 4) is None and evaluation_at(str(tmp_path), 2)["val_loss"] == 1.0


def test_a_resumed_run_that_reached_its_target_stays_stopped(char_data, tmp_path):
    out = tmp_path / "run"
    p = train(char_data, out, "--max_iters=40", "--eval_interval=10", "--target_val_loss=100")
    assert "at iter 0: stopping" in p.stdout
    saved = (out / "ckpt.pt").stat().st_mtime_ns
    p = run("train.py", f"--out_dir={out}", "--init_from=resume")
    assert "already at most target_val_loss=100" in p.stdout and "saved checkpoint" not in p.stdout
    assert load_checkpoint(str(out / "ckpt.pt"))["iter_num"] == 0 and (out / "ckpt.pt").stat().st_mtime_ns == saved


@pytest.mark.slow
def test_a_resume_logs_each_evaluation_once(char_data, tmp_path):
    out = tmp_path / "run"
    train(char_data, out, "--max_iters=4", "--eval_interval=2")
    run("train.py", f"--out_dir={out}", "--init_from=resume", "--max_iters=6")
    with open(out / "log.jsonl") as f:
        records = [json.loads(line) for line in f]  # every line: plot.read_log keeps one record per iteration
    assert [r["iter"] for r in records if "val_loss" in r] == [0, 2, 4, 6]
    assert [r["iter"] for r in records if "train_loss" in r] == list(range(1, 7))


def start(data, out, *extra, launch=(), **popen):
    """train.py (after launch: torchrun's arguments) in a process group of its own, running until
    stopped; returns during its fourth step."""
    # 200 micro-steps make a step of a few tenths of a second: a signal's copy lands while the step
    # still runs, as it does in a run of any size
    cmd = [sys.executable, *launch, "train.py", f"--data_dir={data}", f"--out_dir={out}", *ARGS, "--max_iters=100000",
           "--eval_interval=100000", "--gradient_accumulation_steps=200", *extra]
    p = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         start_new_session=True, **popen)
    log, deadline = out / "log.jsonl", time.time() + 120
    while time.time() < deadline and not (log.exists() and log.read_text().count('"train_loss":') >= 3):
        time.sleep(0.2)
    time.sleep(0.1)  # into the fourth step
    return p


@pytest.mark.slow
def test_a_repeated_sigterm_still_saves(char_data, tmp_path):
    """SLURM signals every process of a job step, and torchrun forwards the signal to its workers
    again: a worker gets the same SIGTERM twice in quick succession. The copy must not skip the save."""
    out = tmp_path / "run"
    p = start(char_data, out, stdin=subprocess.DEVNULL)
    os.killpg(p.pid, signal.SIGTERM)
    time.sleep(0.05)  # two signals at once would be delivered as one
    os.killpg(p.pid, signal.SIGTERM)
    stdout, stderr = p.communicate(timeout=120)
    assert p.returncode == 0, stderr
    assert "stopped at iter" in stdout and "exiting now" not in stderr
    assert load_checkpoint(str(out / "ckpt.pt"))["iter_num"] >= 3


@pytest.mark.slow
def test_a_repeated_sigterm_to_torchrun_and_its_workers_still_saves(char_data, tmp_path):
    """torchrun gets SIGTERM twice (as under SLURM) and passes each on to its workers, which run in
    sessions of their own: each worker gets it twice, at its own moment. They still agree on the step
    to stop after, and save."""
    out = tmp_path / "run"
    p = start(char_data, out, stdin=subprocess.DEVNULL, launch=["-m", "torch.distributed.run", "--standalone",
                                                              "--nproc_per_node=2"])
    try:
        os.killpg(p.pid, signal.SIGTERM)
        time.sleep(0.05)
        os.killpg(p.pid, signal.SIGTERM)
        stdout, _ = p.communicate(timeout=120)  # torchrun stops on the second signal (non-zero); the workers print here
        deadline = time.time() + 120
        while time.time() < deadline:  # until its workers, left to finish, have ended too
            try:
                os.killpg(p.pid, 0)
                time.sleep(0.2)
            except ProcessLookupError:
                break
    finally:
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    assert "stopped at iter" in stdout and load_checkpoint(str(out / "ckpt.pt"))["iter_num"] >= 3


@pytest.mark.slow
def test_a_second_ctrl_c_at_a_terminal_exits_at_once(char_data, tmp_path):
    """At a terminal, a second Ctrl-C a second after the first exits without saving (here during a
    long evaluation, which would otherwise run to its end before the save)."""
    import pty

    leader, follower = pty.openpty()  # the run's stdin is a terminal
    out = tmp_path / "run"
    cmd = [sys.executable, "train.py", f"--data_dir={char_data}", f"--out_dir={out}", *ARGS, "--max_iters=10",
           "--eval_interval=10", "--eval_iters=1000000"]
    p = subprocess.Popen(cmd, cwd=ROOT, stdin=follower, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         start_new_session=True)
    os.close(follower)
    deadline = time.time() + 120
    while time.time() < deadline and not (out / "config.json").exists():  # evaluating at iteration 0 by now
        time.sleep(0.2)
    time.sleep(1)
    os.killpg(p.pid, signal.SIGINT)
    time.sleep(1.5)
    os.killpg(p.pid, signal.SIGINT)
    try:
        stdout, stderr = p.communicate(timeout=60)
    finally:
        p.kill()
        os.close(leader)
    assert p.returncode == 130 and "exiting now without saving" in stderr, stderr
    assert not (out / "ckpt.pt").exists()


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_second_signal_without_a_terminal_exits_at_once(char_data, tmp_path, sig):
    """Under a scheduler (no terminal), a repeat more than a second after the first signal is not a
    copy: it ends a run whose stop hangs (here a long evaluation; a save that hangs alike) at once,
    without saving, where before only SIGKILL could."""
    out = tmp_path / "run"
    cmd = [sys.executable, "train.py", f"--data_dir={char_data}", f"--out_dir={out}", *ARGS, "--max_iters=10",
           "--eval_interval=10", "--eval_iters=1000000"]
    p = subprocess.Popen(cmd, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True, start_new_session=True)
    try:
        deadline = time.time() + 120
        while time.time() < deadline and not (out / "config.json").exists():  # evaluating at iteration 0 by now
            time.sleep(0.2)
        time.sleep(1)
        os.killpg(p.pid, sig)
        time.sleep(0.05)
        os.killpg(p.pid, sig)  # a copy: ignored
        time.sleep(1.5)
        os.killpg(p.pid, sig)
        stdout, stderr = p.communicate(timeout=60)
    finally:
        p.kill()
    assert p.returncode == 128 + sig and f"second {sig.name}: exiting now without saving" in stderr, stderr
    assert stderr.count("exiting now") == 1 and not (out / "ckpt.pt").exists()


@pytest.mark.slow
def test_ddp_ranks_resuming_a_one_process_checkpoint_draw_their_own_dropout(char_data, tmp_path):
    """A checkpoint saved by one process holds one random state. Given to both ranks, they would
    draw the same dropout masks; each rank past the saved ones derives a stream of its own."""
    out = tmp_path / "run"
    common = [*TINY_TRAIN, "--dropout=0.1", "--gradient_accumulation_steps=2"]
    run("train.py", f"--data_dir={char_data}", f"--out_dir={out}", *common, "--max_iters=2", "--eval_interval=2")
    run("-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "train.py", f"--out_dir={out}",
        "--init_from=resume", "--max_iters=4")
    rng = load_checkpoint(str(out / "ckpt.pt"))["rng"]
    assert len(rng) == 2 and not torch.equal(rng[0]["torch"], rng[1]["torch"])
