"""
Which changes made to GPT-2 since 2019 actually help? Train the baseline, each change
alone and all of them together, with the same data order, seed and budget, then write
a report with a table and plots.

    python ablate.py config/ablate_shakespeare_char.py
    python ablate.py config/ablate_shakespeare_char.py --seeds=3          # run-to-run noise
    python ablate.py config/ablate_jsonl.py --max_iters=2000 --lock_file=$HOME/gpu.lock

The runs: 1 baseline (all five flags off), 2-6 each flag alone, 7 all five on. Each run is
`python train.py <config> <your --key=value> <its flags> --seed=... --out_dir=<out_dir>/<run>`
in a subprocess, exactly what you could type yourself. Under out_dir this writes one folder
per run (ckpt.pt, config.json, log.jsonl, train.log), report.md (with a short sample of each
run's text), nll.png, nll_time.png and lr.png (drawn by plot.py's functions).
Finished runs are skipped, an interrupted one resumes from its last checkpoint, so
running the same command again continues an ablation.

Takes train.py's keys (from a config file or --key=value), which it hands to train.py as
given: train.py checks them, and names the nearest key when one is mistyped. ablate.py reads
the few it needs itself (below, with train.py's defaults), plus its own three, which go on
the command line only (train.py would not know them in a config file).
"""

import fcntl
import json
import math
import os
import statistics
import subprocess
import sys
import time
from contextlib import contextmanager, nullcontext

import torch

from checkpoint import load_model, read_log
from configurator import configure
from data.common import dataset_dir, load_meta
from plot import plot_lr, plot_nll

# ----------------------------------------------------------------------------- config
# the train.py keys ablate.py reads itself, with train.py's defaults (every other key only
# passes through to train.py)
out_dir = "out"  # the ablation's folder: one run folder per variant, report.md and plots
dataset = "shakespeare_char"  # a prepared folder under data/ (checked before the first run)
data_dir = ""  # or any folder holding train.bin, val.bin, meta.json (overrides dataset)
max_iters = 600000  # every run's steps; a run is finished when it has evaluated at max_iters
seed = 1337  # the first repeat's seed (the others: seed+1, ...)
gradient_accumulation_steps = 5 * 8  # micro-steps per step (for the report's tokens per step)
batch_size = 12  # sequences per micro-step (same)
block_size = 1024  # context length (same)
device = "auto"  # as train.py's; ablate.py names it in the report
# ablate.py's own keys
seeds = 1  # repeats of every run with seed, seed+1, ...; 3 shows how much runs differ by chance
lock_file = ""  # hold an exclusive flock on this file during each run (e.g. a shared CPU/GPU lock)
report_only = False  # train nothing: rebuild report.md and the plots from the runs finished so far
# ------------------------------------------------------------------------------
# lists, not tuples, so that the configurator does not offer them as keys
ABLATE_KEYS = ["seeds", "lock_file", "report_only"]
FLAGS = ["use_swiglu", "use_rope", "use_rmsnorm", "use_warmup", "use_cosine"]
RUNS = [("baseline", ())] + [(f.removeprefix("use_"), (f,)) for f in FLAGS] + [("all", tuple(FLAGS))]


def run_name(name, k):
    """Folder of repeat k (k=0 keeps the bare name, so --seeds=3 reuses a --seeds=1 ablation)."""
    return name if k == 0 else f"{name}-s{k}"


def finished(run_dir, max_iters):
    """A run is done when it has evaluated at max_iters (train.py's last act)."""
    _, evals, _ = read_log(os.path.join(run_dir, "log.jsonl"))
    return bool(evals) and evals[-1]["iter"] >= max_iters


@contextmanager
def locked(path):
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)  # waits while another process holds it
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def train_one(args, run_dir, label):
    """Run train.py as a subprocess, copying its output to run_dir/train.log and echoing
    the evaluation lines. Returns the seconds it ran; raises on failure."""
    t0 = time.time()
    with open(os.path.join(run_dir, "train.log"), "a") as logf:
        train_py = os.path.join(os.path.dirname(os.path.abspath(__file__)), "train.py")
        proc = subprocess.Popen([sys.executable, "-u", train_py, *args],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            for line in proc.stdout:
                logf.write(line)
                if line.startswith(("step ", "error:", "stopped")):
                    print(f"  {label}: {line.rstrip()}", flush=True)
        except KeyboardInterrupt:  # Ctrl-C reached train.py too: let it save its checkpoint
            proc.wait()
            raise
        rc = proc.wait()
    dt = time.time() - t0
    if rc != 0:
        raise RuntimeError(f"run {label} failed (exit {rc}); see {os.path.join(run_dir, 'train.log')}")
    return dt


def sample_text(model, tok, max_new_tokens=200, seed=1337):
    """A short text from a newline, with sample.py's default temperature (0.8) and top-k (200)."""
    start = torch.tensor([tok.encode("\n")], dtype=torch.long)  # (1, 1)
    out = model.eval().generate(start, max_new_tokens, temperature=0.8, top_k=200, eos_token=tok.eot,
                                generator=torch.Generator().manual_seed(seed))
    return tok.decode(out[0].tolist())


def summarise(run_dir, name, flags, seed):
    """One finished run's numbers, and a sample from its last checkpoint, for the report."""
    steps, evals, _ = read_log(os.path.join(run_dir, "log.jsonl"))
    model, tok, _ = load_model("resume", run_dir)
    wall = None
    if os.path.isfile(os.path.join(run_dir, "ablate.json")):
        with open(os.path.join(run_dir, "ablate.json")) as f:
            wall = json.load(f).get("wall_s")
    rate = statistics.median(s["tok_per_s"] for s in steps[1:] or steps) if steps else None  # the first includes eval
    return {"name": name, "flags": flags, "seed": seed, "params": model.num_params(non_embedding=False),
            "steps": steps, "evals": evals, "final_train": evals[-1]["train_loss_eval"],
            "best_val": min(e["val_loss"] for e in evals), "tok_per_s": rate, "wall_s": wall,
            "sample": sample_text(model, tok)}


def fmt_time(s):
    return "–" if s is None else f"{int(s // 60)}m {int(s % 60):02d}s"


def fmt_rate(xs):
    xs = [x for x in xs if x is not None]
    return f"{statistics.mean(xs):,.0f}" if xs else "–"


def mean_pm(xs):
    """'mean ± standard error' of a list (just the value for one)."""
    if len(xs) == 1:
        return f"{xs[0]:.4f}"
    return f"{statistics.mean(xs):.4f} ± {statistics.stdev(xs) / math.sqrt(len(xs)):.4f}"


def write_report(out, results, header):
    """report.md: one row per variant; with several seeds, means ± standard errors, and
    the difference from the baseline paired by seed (same seed = same data order)."""
    base = {r["seed"]: r["best_val"] for r in results.get("baseline", [])}
    lines = [f"# Ablation report: {out}", "", *header, "",
             "| run | flags | parameters | final train NLL | best val NLL | Δ val vs baseline | tokens/s | wall time |",
             "|---|---|---:|---:|---:|---:|---:|---:|"]
    for name, flags in RUNS:
        rs = results.get(name, [])
        if not rs:
            lines.append(f"| {name} | {', '.join(flags) or '(none: GPT-2)'} | | | not finished | | | |")
            continue
        diffs = [r["best_val"] - base[r["seed"]] for r in rs if r["seed"] in base]
        diff = "–" if name == "baseline" or not diffs else ("+" if statistics.mean(diffs) >= 0 else "") + mean_pm(diffs)
        walls = [r["wall_s"] for r in rs if r["wall_s"] is not None]
        lines.append(
            f"| {name}{f' (×{len(rs)})' if len(rs) > 1 else ''} | {', '.join(flags) or '(none: GPT-2)'} "
            f"| {rs[0]['params']:,} | {mean_pm([r['final_train'] for r in rs])} "
            f"| {mean_pm([r['best_val'] for r in rs])} | {diff} | {fmt_rate([r['tok_per_s'] for r in rs])} "
            f"| {fmt_time(statistics.mean(walls)) if walls else '–'} |")
    total = sum(r["wall_s"] or 0 for rs in results.values() for r in rs)
    if len(base) > 1:
        noise = (f"With {len(base)} seeds, ± is the standard error of the mean; Δ is paired by seed (a variant "
                 f"minus the baseline with the same seed, so the same data order). The baseline's best val NLL "
                 f"varies by {statistics.stdev(base.values()):.4f} (standard deviation) from seed to seed.")
    else:
        noise = "One seed: no run-to-run noise is measured; run again with --seeds=3 to see which Δ are real."
    lines += ["", f"Total wall time of the runs: {fmt_time(total)}.", "", noise, "",
              "NLL is the mean cross-entropy in nats per token (lower is better); a negative Δ means the change "
              "helped. Final train NLL is the last evaluation's mean over eval_iters training batches; best val "
              "NLL is the lowest validation evaluation of the run. Parameters count every weight (the position "
              "table included). Tokens/s is the median over the logged steps; wall time is per run (mean over "
              "seeds), evaluations included.",
              "", "![NLL against step](nll.png)", "", "![NLL against wall time](nll_time.png)", "",
              "![learning rate against step](lr.png)", ""]
    samples = [(run_name(name, 0), rs[0]["sample"]) for name, _ in RUNS for rs in [results.get(name)]
               if rs and rs[0].get("sample") is not None]
    if samples:
        lines += ["## Samples", "", "200 tokens from each run's last checkpoint (the first seed's), from a newline, "
                  "at temperature 0.8 and top-k 200, with the same sampling seed.", ""]
        for name, text in samples:
            lines += [f"**{name}**", "", "```", text.strip("\n"), "```", ""]
    with open(os.path.join(out, "report.md"), "w") as f:
        f.write("\n".join(lines))


def write_plots(out, results):
    """nll.png and nll_time.png: train (smoothed) and val NLL against step and against wall time,
    every variant, the baseline in black; lr.png: the schedules. With several seeds the curves
    are the first seed's."""
    firsts = [(name, results[name][0]) for name, _ in RUNS if results.get(name)]
    runs = [(name, r["steps"], r["evals"]) for name, r in firsts]
    plot_nll(runs, os.path.join(out, "nll.png"), "iter", reference="baseline")
    plot_nll(runs, os.path.join(out, "nll_time.png"), "elapsed_s", reference="baseline")
    schedules = [("+".join(f.removeprefix("use_") for f in r["flags"] if f in ("use_warmup", "use_cosine")) or "constant",
                  r["steps"]) for _, r in firsts]
    plot_lr(schedules, os.path.join(out, "lr.png"))


def main(argv):
    for f in FLAGS:
        if any(a.startswith(f"--{f}=") for a in argv):
            sys.exit(f"error: --{f} is what the ablation varies; drop it (every run sets it itself)")
    try:
        load_meta(dataset_dir(dataset, data_dir))
    except FileNotFoundError as e:
        sys.exit(f"error: {e}")
    # train.py gets the config files and --key=value exactly as given, minus ablate.py's own keys
    passed = [a for a in argv if not a.startswith(tuple(f"--{k}=" for k in ABLATE_KEYS))]
    os.makedirs(out_dir, exist_ok=True)
    command = " ".join(a for a in argv if not a.startswith("--report_only="))
    header = [f"`python ablate.py {command}` — {seeds} seed(s) from {seed}, {max_iters} steps of "
              f"{gradient_accumulation_steps * batch_size * block_size:,} tokens each, device {device}."]

    plan = [(name, flags, k) for k in range(seeds) for name, flags in RUNS]
    results = {}
    for i, (name, flags, k) in enumerate(plan, 1):
        label = run_name(name, k)
        run_dir = os.path.join(out_dir, label)
        if finished(run_dir, max_iters):
            print(f"[{i}/{len(plan)}] {label}: finished already, skipping", flush=True)
        elif report_only:
            print(f"[{i}/{len(plan)}] {label}: not finished, left out of the report", flush=True)
            continue
        else:
            os.makedirs(run_dir, exist_ok=True)
            resume = os.path.isfile(os.path.join(run_dir, "ckpt.pt"))
            if not resume and os.path.isfile(os.path.join(run_dir, "log.jsonl")):
                os.remove(os.path.join(run_dir, "log.jsonl"))  # a start that never checkpointed: begin again
            args = passed + [f"--{f}={f in flags}" for f in FLAGS] + [
                f"--seed={seed + k}", f"--out_dir={run_dir}", f"--init_from={'resume' if resume else 'scratch'}"]
            print(f"[{i}/{len(plan)}] {label}: {'resuming' if resume else 'training'} "
                  f"({', '.join(flags) or 'baseline'}, seed {seed + k})", flush=True)
            with locked(lock_file) if lock_file else nullcontext():
                dt = train_one(args, run_dir, label)
            record = {"name": name, "flags": list(flags), "seed": seed + k, "wall_s": dt}
            if resume and os.path.isfile(os.path.join(run_dir, "ablate.json")):
                with open(os.path.join(run_dir, "ablate.json")) as f:
                    record["wall_s"] += json.load(f).get("wall_s", 0)  # time of the earlier, interrupted part
            with open(os.path.join(run_dir, "ablate.json"), "w") as f:
                json.dump(record, f)
            if not finished(run_dir, max_iters):
                sys.exit(f"error: {label} stopped before max_iters={max_iters}; run the same command again to resume")
        r = summarise(run_dir, name, flags, seed + k)
        print(f"[{i}/{len(plan)}] {label}: best val NLL {r['best_val']:.4f}, {fmt_rate([r['tok_per_s']])} tok/s, "
              f"{fmt_time(r['wall_s'])}", flush=True)
        results.setdefault(name, []).append(r)
        write_report(out_dir, results, header)  # after every run, so a long ablation shows its progress
        write_plots(out_dir, results)
    print(f"wrote {os.path.join(out_dir, 'report.md')}, nll.png, nll_time.png and lr.png")


if __name__ == "__main__":
    configure(globals(), unknown_keys="skip")  # train.py checks every key it is handed
    if seeds < 1:
        sys.exit(f"error: --seeds={seeds} must be at least 1")
    try:
        main(sys.argv[1:])
    except RuntimeError as e:
        sys.exit(f"error: {e}")
    except KeyboardInterrupt:
        sys.exit("interrupted; run the same command again to continue (finished runs are kept)")
