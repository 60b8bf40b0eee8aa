"""ablate.py on a tiny budget: 7 runs, a report with 7 rows, samples and the plots, skipping and resuming."""

import json
import os

import pytest

import ablate
from conftest import exit_message, in_process, run
from checkpoint import read_log

TINY = ["--device=cpu", "--dtype=float32", "--n_layer=1", "--n_head=2", "--n_embd=16", "--block_size=16", "--batch_size=4",
        "--gradient_accumulation_steps=1", "--max_iters=6", "--eval_interval=3", "--eval_iters=1",
        "--log_interval=1", "--warmup_iters=3", "--lr_decay_iters=6", "--learning_rate=1e-3", "--min_lr=1e-4"]


def table_rows(report):
    return [line for line in report.splitlines() if line.startswith("| ") and not line.startswith("| run ")]


@pytest.mark.slow
def test_ablation_report_plots_skip_and_resume(char_data, tmp_path):
    out = str(tmp_path / "abl")
    p = run("ablate.py", f"--data_dir={char_data}", f"--out_dir={out}", *TINY)
    assert "[7/7] all:" in p.stdout
    report = open(os.path.join(out, "report.md")).read()
    rows = table_rows(report)
    assert [r.split("|")[1].strip() for r in rows] == [name for name, _ in ablate.RUNS]
    assert "not finished" not in report
    samples = report.split("## Samples")[1]
    assert all(f"**{name}**" in samples for name, _ in ablate.RUNS) and samples.count("```") == 2 * 7
    for png in ("nll.png", "nll_time.png", "lr.png"):
        data = open(os.path.join(out, png), "rb").read()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and 1000 < len(data) < 200_000

    for name, flags in ablate.RUNS:
        d = os.path.join(out, name)
        assert {"ckpt.pt", "config.json", "log.jsonl", "train.log"} <= set(os.listdir(d))
        cfg = json.load(open(os.path.join(d, "config.json")))
        assert all(cfg["config"][f] == (f in flags) for f in ablate.FLAGS)  # exactly its flags on
        assert cfg["config"]["seed"] == 1337 and cfg["config"]["max_iters"] == 6  # same seed and budget for all
        steps, evals, _ = read_log(os.path.join(d, "log.jsonl"))
        assert [e["iter"] for e in evals] == [0, 3, 6] and [s["iter"] for s in steps] == list(range(1, 7))
    lr = {name: [s["lr"] for s in read_log(os.path.join(out, name, "log.jsonl"))[0]] for name, _ in ablate.RUNS}
    assert lr["baseline"] == lr["rope"] == [1e-3] * 6  # no schedule: constant
    assert lr["warmup"][0] < lr["warmup"][1] < lr["warmup"][2] < lr["warmup"][3] == 1e-3  # warmup, then flat
    assert lr["cosine"][0] == 1e-3 and lr["cosine"][-1] < 2e-4  # decays from the peak
    assert lr["all"][:4] == lr["warmup"][:4] and lr["all"][3] > lr["all"][4] > lr["all"][5]  # warmup, then cosine
    # the first run of a fixed seed and data order: the same first loss for runs with the same model
    first = {name: read_log(os.path.join(out, name, "log.jsonl"))[0][0]["train_loss"] for name, _ in ablate.RUNS}
    assert first["baseline"] == first["cosine"]

    # again: every run is finished, so nothing trains; a run whose log was lost resumes from its checkpoint
    before = open(os.path.join(out, "baseline", "log.jsonl")).read()
    os.remove(os.path.join(out, "all", "log.jsonl"))
    printed = in_process("ablate.py", f"--data_dir={char_data}", f"--out_dir={out}", *TINY)  # its train.py: a subprocess
    assert printed.count("finished already, skipping") == 6 and "all: resuming" in printed
    assert open(os.path.join(out, "baseline", "log.jsonl")).read() == before
    assert len(table_rows(open(os.path.join(out, "report.md")).read())) == 7
    # report_only: a second seed is asked for but nothing trains; the report keeps the 7 finished runs
    printed = in_process("ablate.py", f"--data_dir={char_data}", f"--out_dir={out}", *TINY, "--seeds=2",
                         "--report_only=True")
    assert printed.count("left out of the report") == 7 and not os.path.exists(os.path.join(out, "baseline-s1"))
    assert [r.split("|")[1].strip() for r in table_rows(open(os.path.join(out, "report.md")).read())] == [
        name for name, _ in ablate.RUNS]


def test_ablation_refuses_to_set_a_varied_flag(char_data, tmp_path):
    line = exit_message(in_process, "ablate.py", f"--data_dir={char_data}", f"--out_dir={tmp_path}", "--use_rope=True")
    assert line == "error: --use_rope is what the ablation varies; drop it (every run sets it itself)"


def test_report_with_seeds_shows_paired_noise(tmp_path):
    def result(name, flags, seed, val):
        return {"name": name, "flags": flags, "seed": seed, "params": 1000, "steps": [], "evals": [],
                "final_train": val - 0.1, "best_val": val, "tok_per_s": 100.0, "wall_s": 60.0}
    vals = {"baseline": [1.50, 1.54], "rope": [1.45, 1.47]}
    results = {name: [result(name, flags, 1337 + k, v) for k, v in enumerate(vals[name])]
               for name, flags in ablate.RUNS if name in vals}
    ablate.write_report(str(tmp_path), results, ["header"])
    rows = {r.split("|")[1].strip(): [c.strip() for c in r.split("|")[2:-1]]
            for r in table_rows(open(tmp_path / "report.md").read())}
    assert len(rows) == 7 and rows["rope (×2)"][3] == "1.4600 ± 0.0100"  # mean ± standard error
    assert rows["rope (×2)"][4] == "-0.0600 ± 0.0100"  # paired by seed: -0.05 and -0.07
    assert rows["swiglu"][3] == "not finished"
    assert "varies by 0.0283 (standard deviation)" in open(tmp_path / "report.md").read()  # sd of 1.50, 1.54
