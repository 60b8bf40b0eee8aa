"""Shared fixtures: the repo root on sys.path, the shared data folder, tiny prepared datasets.

The real corpora live outside the repository (../shared/data beside the checkout, or
wherever GPTLAB_SHARED_DATA points); tests never download anything."""

import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
SHARED = os.environ.get("GPTLAB_SHARED_DATA", os.path.join(ROOT, "..", "shared", "data"))
os.environ.setdefault("TIKTOKEN_CACHE_DIR", os.path.join(SHARED, "tiktoken_cache"))
os.environ.setdefault("WANDB_MODE", "offline")  # hermetic: a run with wandb_log never logs in or goes online


def shared(*parts):
    path = os.path.join(SHARED, *parts)
    if not os.path.exists(path):
        pytest.fail(f"{path} is missing; set GPTLAB_SHARED_DATA to the shared data folder")
    return path


def run(*args, check=True, timeout=600, env=None, **kw):
    """Run a repo script in a subprocess (from the repo root); returns CompletedProcess."""
    env = dict(env or os.environ, PYTHONUNBUFFERED="1")
    p = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout, env=env, **kw)
    if check and p.returncode != 0:
        raise AssertionError(f"{' '.join(args)} failed ({p.returncode}):\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}")
    return p


@pytest.fixture(scope="session")
def char_data(tmp_path_factory):
    """Tiny Shakespeare prepared at the character level, in a temp folder."""
    out = tmp_path_factory.mktemp("shakespeare_char")
    run("data/shakespeare_char/prepare.py", f"--input={shared('tinyshakespeare', 'input.txt')}", f"--out_dir={out}")
    return str(out)
