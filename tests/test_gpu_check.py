"""bench/gpu_check.sh --dry_run: the GPU check script's every step, on the CPU at a tiny size, so
the script a GPU owner runs is known to work before anyone runs it."""

import os
import re
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.slow  # nine script runs
def test_gpu_check_dry_run_prints_its_table():
    p = subprocess.run(["bash", "bench/gpu_check.sh", "--dry_run"], cwd=ROOT, capture_output=True, text=True,
                       timeout=600, env=dict(os.environ, PYTHON=sys.executable))
    assert p.returncode == 0, p.stdout + p.stderr
    rows = [line for line in p.stdout.splitlines() if line.startswith("| ") and not line.startswith("| check")]
    assert len(rows) == 9 and not any("FAILED" in r for r in rows), p.stdout
    text = "\n".join(rows)
    assert "flash attention: forward and backward ran" in text
    assert re.search(r"training step.*\| median [0-9.]+ ms/iter, [0-9,]+ tokens/s", text)
    assert re.search(r"fp16 \+ GradScaler, 2 steps resumed from bf16 \| val loss [0-9.]+ at the bf16", text)
    cached = r"[0-9,]+ tokens/s with the cache, [0-9,]+ without \([0-9.]+x\); int8 weights [0-9,]+"  # bf16 where it runs
    assert len(re.findall(cached, text)) == 2
    assert re.search(r"compiled decoding with CUDA graphs, batch 1 \| [0-9,]+ tokens/s, not compiled \(dry run\)", text)
    resumed, straight = re.search(r"val loss ([0-9.]+) \(without the stop: ([0-9.]+)\)", text).groups()
    assert resumed == straight  # on a CPU a resume continues the run exactly
    assert "CPU (dry run)" in p.stdout
    bad = subprocess.run(["bash", "bench/gpu_check.sh", "--dryrun"], cwd=ROOT, capture_output=True, text=True)
    assert bad.returncode == 2 and "unknown argument '--dryrun'" in bad.stderr
