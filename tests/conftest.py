"""What every test file uses: the repo root on sys.path, the fixtures in tests/data, the
offline guard, the table of flag combinations, and prepared datasets and a tiny trained run,
made once and reused by the tests that need them.

Everything the tests read ships in tests/data (tests/data/README.md says where each file
comes from); nothing is downloaded, and a connection off this machine fails the test.
    python -m pytest -q tests/                   # everything, a few minutes on 2 cores
    python -m pytest -q -m "not slow" tests/     # without the end-to-end runs, under a minute
"""

import contextlib
import importlib.util
import io
import os
import runpy
import shutil
import subprocess
import sys
import tempfile

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.path.join(ROOT, "tests", "data")
OFFLINE = os.path.join(ROOT, "tests", "offline")  # holds the sitecustomize.py every subprocess loads
sys.path.insert(0, ROOT)

# Hugging Face's caches and the log of refused connections, in a temp folder of this run's own:
# a model or dataset the user has cached changes no test, and the tests write nothing there
RUN_DIR = tempfile.mkdtemp(prefix="gptlab-tests-")
NETWORK_LOG = os.path.join(RUN_DIR, "network_attempts.log")
os.environ.update(
    TIKTOKEN_CACHE_DIR=os.path.join(DATA, "tiktoken_cache"),  # GPT-2's BPE, whatever cache the user has
    WANDB_MODE="offline",  # a run with wandb_log never logs in or goes online
    HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", HF_HOME=os.path.join(RUN_DIR, "hf"),
    HF_DATASETS_CACHE=os.path.join(RUN_DIR, "hf_datasets"),
    GPTLAB_TESTS_NETWORK_LOG=NETWORK_LOG,
    OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"),  # see one_thread; for scripts' own subprocesses too
    PYTHONPATH=os.pathsep.join(filter(None, [OFFLINE, os.environ.get("PYTHONPATH")])),
)
_spec = importlib.util.spec_from_file_location("offline_guard", os.path.join(OFFLINE, "sitecustomize.py"))
offline_guard = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(offline_guard)  # installs the guard in this process too


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: runs a script end to end (train.py, torchrun, ablate.py, the "
                                       "birthplace pipeline); deselect with -m 'not slow'")


def pytest_unconfigure(config):
    shutil.rmtree(RUN_DIR, ignore_errors=True)


def read_network_attempts():
    """The connections refused since the last call (one line each), and forget them."""
    if not os.path.exists(NETWORK_LOG):
        return []
    with open(NETWORK_LOG) as f:
        lines = f.read().splitlines()
    os.remove(NETWORK_LOG)
    return lines


@pytest.fixture(autouse=True)
def offline():
    """Fail any test that tried to reach the network, even where the code caught the error.
    A test that provokes an attempt on purpose takes the network_attempts fixture and reads it."""
    before = read_network_attempts()  # from a fixture made once, just before this test
    if before:
        pytest.fail("a fixture of this test tried to reach the network (tests run offline):\n  " + "\n  ".join(before))
    yield
    attempts = read_network_attempts()
    if attempts:
        pytest.fail("the test tried to reach the network (tests run offline):\n  " + "\n  ".join(attempts))


@pytest.fixture
def network_attempts():
    return read_network_attempts


@pytest.fixture(autouse=True, scope="session")
def one_thread():
    """Tiny models gain nothing from a second thread, and on a busy 2-core machine the threads'
    hand-offs made the cache tests 40x slower (190 s against 4.4 s)."""
    import torch
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def fixture(*parts):
    """The path of a file that ships in tests/data."""
    path = os.path.join(DATA, *parts)
    if not os.path.exists(path):
        pytest.fail(f"{path} is missing from this checkout; tests/data/README.md lists what belongs there")
    return path


def run(*args, check=True, timeout=600, env=None, **kw):
    """Run a repo script in a subprocess (from the repo root), offline like this process;
    returns CompletedProcess. A plain train.py run (no env or subprocess options, no compile,
    no wandb) runs in this process instead (run_train_here): the same script as __main__, but
    without the seconds each new interpreter spends importing torch."""
    if args[0] == "train.py" and env is None and not kw and not any(
            a.startswith(("--compile=True", "--wandb_log=True")) for a in args):
        p = run_train_here(list(args))
    else:
        env = dict(env or os.environ, PYTHONUNBUFFERED="1")
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [OFFLINE, env.get("PYTHONPATH")]))
        p = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout,
                           env=env, **kw)
    if check and p.returncode != 0:
        raise AssertionError(f"{' '.join(args)} failed ({p.returncode}):\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}")
    return p


def run_train_here(args):
    """`python train.py ARGS` from the repo root, run in this process: what it prints to stdout
    and stderr and its exit status, as a CompletedProcess. A sys.exit("error: ...") prints its
    line to stderr and gives status 1, as python does; an exception prints its traceback. What the
    run changes in the process is put back: the signal handlers it installs, the random states
    it seeds, the working directory, and the warning filters (every warning it raises is printed
    to its stderr, as in a new interpreter, not collected by pytest)."""
    import random
    import signal
    import traceback
    import warnings

    import numpy as np
    import torch
    out, err = io.StringIO(), io.StringIO()
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    states = (random.getstate(), np.random.get_state(), torch.get_rng_state())
    saved_argv, saved_cwd, code = sys.argv, os.getcwd(), 0
    sys.argv = args
    os.chdir(ROOT)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            warnings.resetwarnings()
            warnings.simplefilter("default")
            warnings.showwarning = lambda msg, cat, fname, line, file=None, text=None: err.write(
                warnings.formatwarning(msg, cat, fname, line, text))
            try:
                runpy.run_path(os.path.join(ROOT, "train.py"), run_name="__main__")
            except SystemExit as e:
                if isinstance(e.code, str):
                    err.write(e.code + "\n")
                code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
            except Exception:
                err.write(traceback.format_exc())
                code = 1
    finally:
        sys.argv = saved_argv
        os.chdir(saved_cwd)
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
        random.setstate(states[0])
        np.random.set_state(states[1])
        torch.set_rng_state(states[2])
    return subprocess.CompletedProcess(["train.py", *args[1:]], code, out.getvalue(), err.getvalue())


def quietly(fn, *args):
    """fn(*args) with its printing captured; returns (result, what it printed)."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        result = fn(*args)
    return result, out.getvalue()


def in_process(script, *argv):
    """What `python script *argv` prints, without starting a new interpreter: the script runs
    as __main__ in this process, with sys.argv set, through its own command-line code (for
    sample.py, evaluate.py, export.py, ablate.py). A sys.exit("error: ...") comes out as
    SystemExit, whose message python would print to stderr."""
    saved = sys.argv
    sys.argv = [script, *argv]
    try:
        return quietly(runpy.run_path, os.path.join(ROOT, script), None, "__main__")[1]
    finally:
        sys.argv = saved


def stop_writing_at(monkeypatch, name):
    """Make data/writer.py stop (KeyboardInterrupt, as Ctrl-C) when it comes to write the bin
    `name` (e.g. "aug.bin"), as a prepare interrupted part-way; monkeypatch.undo() ends it."""
    import data.writer
    real = data.writer.write_tokens

    def stopped(path, *args, **kw):
        if os.path.basename(path) == name:
            raise KeyboardInterrupt
        return real(path, *args, **kw)
    monkeypatch.setattr(data.writer, "write_tokens", stopped)


def exit_message(fn, *args):
    """The one line a script stops with (its sys.exit("error: ...")), as python prints it to stderr."""
    with pytest.raises(SystemExit) as e:
        quietly(fn, *args)
    message = e.value.code
    assert isinstance(message, str) and message.startswith("error: ") and "\n" not in message, message
    return message


# ------------------------------------------------------------------------ flag combinations
# One table for every test that runs each ablation flag (test_flags.py, test_cache.py): one
# entry per model flag, all of them on, and all on with the Synthesizer (once with SwiGLU,
# once with ReLU^2, which exclude each other). use_warmup and use_cosine are train.py's.
ALL_ON = dict(use_swiglu=True, use_rope=True, use_rmsnorm=True, use_qk_norm=True, tie_embeddings=False,
              bias=False, n_kv_head=2)
# the Synthesizer has no q, k for RoPE, QK-norm or GQA
SYNTHESIZER_ALL = dict(ALL_ON, attention="synthesizer", use_rope=False, use_qk_norm=False, n_kv_head=0)
FLAG_COMBOS = {
    "baseline": {}, "swiglu": dict(use_swiglu=True), "rope": dict(use_rope=True), "rmsnorm": dict(use_rmsnorm=True),
    "qk_norm": dict(use_qk_norm=True), "relu2": dict(use_relu2=True), "gelu_tanh": dict(gelu_tanh=True),
    "untied": dict(tie_embeddings=False), "no_bias": dict(bias=False), "gqa": dict(n_kv_head=2),
    "mqa": dict(n_kv_head=1), "synthesizer": dict(attention="synthesizer"), "all": ALL_ON,
    "all_synthesizer": SYNTHESIZER_ALL,
    "all_synthesizer_relu2": dict(SYNTHESIZER_ALL, use_swiglu=False, use_relu2=True),
}
# (name, attn_impl): both implementations for each, but the Synthesizer is manual only
FLAG_CASES = [(name, impl) for name, kw in FLAG_COMBOS.items() for impl in ("sdpa", "manual")
              if not (kw.get("attention") == "synthesizer" and impl == "sdpa")]


# ------------------------------------------------ prepared data and a run, made once

@pytest.fixture(scope="session")
def char_data(tmp_path_factory):
    """The tiny Shakespeare fixture prepared at the character level, in a temp folder."""
    from data.shakespeare_char.prepare import main
    out = tmp_path_factory.mktemp("shakespeare_char")
    quietly(main, [f"--input={fixture('tinyshakespeare.txt')}", f"--out_dir={out}"])
    return str(out)


# the smallest model the training tests use: 2 layers, 2 heads, 32 wide, on the CPU, in fp32 (dtype=auto
# would be bf16 on a CPU with bf16 units: the tests give the same numbers on every CPU)
TINY_TRAIN = ["--device=cpu", "--dtype=float32", "--n_layer=2", "--n_head=2", "--n_embd=32", "--block_size=32", "--batch_size=8",
              "--gradient_accumulation_steps=1", "--eval_iters=5", "--log_interval=1", "--learning_rate=3e-3",
              "--warmup_iters=5", "--compile=False"]
CHAR_RUN_ITERS = 60  # enough for the val loss to fall well below its start (test_train.py)


@pytest.fixture(scope="session")
def char_run(char_data, tmp_path_factory):
    """One tiny run of train.py on char_data, for every test that samples from, damages or
    resumes a trained checkpoint: {"out_dir", "stdout"}. A test that changes the run works
    on a copy (copy_run)."""
    out = str(tmp_path_factory.mktemp("char_run") / "run")
    p = run("train.py", f"--data_dir={char_data}", f"--out_dir={out}", *TINY_TRAIN,
            f"--max_iters={CHAR_RUN_ITERS}", "--eval_interval=30")
    return {"out_dir": out, "stdout": p.stdout}


def copy_run(char_run, dest):
    """A copy of char_run's folder at dest, for a test to resume, damage or extend."""
    shutil.copytree(char_run["out_dir"], dest)
    return str(dest)


@pytest.fixture(scope="session")
def bp_data(tmp_path_factory):
    """The birthplace fixtures prepared for pretraining and finetuning, 50 of the 300 training
    questions held out: (folder, what prepare printed)."""
    from data.birthplace.prepare import main
    out = tmp_path_factory.mktemp("birthplace")
    _, printed = quietly(main, [f"--input={fixture('birthplace')}", f"--out_dir={out}", "--holdout=50"])
    return str(out), printed
