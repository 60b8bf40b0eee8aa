"""
Which changes made to GPT-2 since 2019 actually help? Train the baseline, each change
alone and all of them together, with the same data order, seed and budget, then write
a report with a table and plots.

    python ablate.py config/ablate_shakespeare_char.py
    python ablate.py config/ablate_shakespeare_char.py --seeds=3          # run-to-run noise
    python ablate.py config/ablate_jsonl.py --max_iters=2000 --lock_file=/tmp/gpu.lock

The runs: 1 baseline (all five flags off), 2-6 each flag alone, 7 all five on. Each run is
`python train.py <config> <your --key=value> <its flags> --seed=... --out_dir=<out_dir>/<run>`
in a subprocess, exactly what you could type yourself. Under out_dir this writes one folder
per run (ckpt.pt, config.json, log.jsonl, train.log), report.md, nll.png and lr.png.
Finished runs are skipped, an interrupted one resumes from its last checkpoint, so
running the same command again continues an ablation.

Takes train.py's keys (from a config file or --key=value) plus the few below, which go
on the command line only (train.py would not know them in a config file).
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
from dataclasses import fields

import train
from configurator import configure
from data.common import dataset_dir, load_meta
from model import GPT, GPTConfig

# ----------------------------------------------------------------------------- config
globals().update({k: getattr(train, k) for k in train.CONFIG_KEYS})
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


def read_log(path):
    """log.jsonl -> (train records, eval records), each sorted by iter. A resumed run logs
    the steps after its checkpoint twice; the later record wins."""
    steps, evals = {}, {}
    if os.path.isfile(path):
        with open(path) as f:
            for line in f:
                r = json.loads(line)
                (evals if "val_loss" in r else steps)[r["iter"]] = r
    return [steps[i] for i in sorted(steps)], [evals[i] for i in sorted(evals)]


def finished(run_dir, max_iters):
    """A run is done when it has evaluated at max_iters (train.py's last act)."""
    _, evals = read_log(os.path.join(run_dir, "log.jsonl"))
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


def summarise(run_dir, name, flags, seed):
    """One finished run's numbers for the report."""
    steps, evals = read_log(os.path.join(run_dir, "log.jsonl"))
    with open(os.path.join(run_dir, "config.json")) as f:
        model_args = json.load(f)["model_args"]
    known = {f.name for f in fields(GPTConfig)}
    model = GPT(GPTConfig(**{k: v for k, v in model_args.items() if k in known}))
    n_params = model.num_params(non_embedding=False)
    wall = None
    if os.path.isfile(os.path.join(run_dir, "ablate.json")):
        with open(os.path.join(run_dir, "ablate.json")) as f:
            wall = json.load(f).get("wall_s")
    rate = statistics.median(s["tok_per_s"] for s in steps[1:] or steps) if steps else None  # the first includes eval
    return {"name": name, "flags": flags, "seed": seed, "params": n_params, "steps": steps, "evals": evals,
            "final_train": evals[-1]["train_loss_eval"], "best_val": min(e["val_loss"] for e in evals),
            "tok_per_s": rate, "wall_s": wall}


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
              "", "![NLL against step](nll.png)", "", "![learning rate against step](lr.png)", ""]
    with open(os.path.join(out, "report.md"), "w") as f:
        f.write("\n".join(lines))


def smooth(ys, window):
    out, acc = [], []
    for y in ys:
        acc = (acc + [y])[-window:]
        out.append(sum(acc) / len(acc))
    return out


def write_plots(out, results):
    """nll.png: train (smoothed) and val NLL against step, every variant; lr.png: the schedules.
    With several seeds the curves are the first seed's."""
    import matplotlib
    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    firsts = [(name, results[name][0]) for name, _ in RUNS if results.get(name)]
    fig, (ax_t, ax_v) = plt.subplots(1, 2, figsize=(11, 4.2))
    lows = {ax_t: [], ax_v: []}
    for name, r in firsts:
        style = dict(label=name, lw=2.0 if name in ("baseline", "all") else 1.2,
                     color="black" if name == "baseline" else None)
        train_nll = smooth([s["train_loss"] for s in r["steps"]], 10)
        ax_t.plot([s["iter"] for s in r["steps"]], train_nll, **style)
        ax_v.plot([e["iter"] for e in r["evals"]], [e["val_loss"] for e in r["evals"]], marker=".", **style)
        lows[ax_t] += train_nll
        lows[ax_v] += [e["val_loss"] for e in r["evals"]]
    for ax, what in ((ax_t, "train NLL (running mean of 10 logs)"), (ax_v, "val NLL")):
        ax.set_xlabel("optimisation step")
        ax.set_ylabel(what)
        ax.grid(alpha=0.3)
        if lows[ax]:  # the first steps' loss (~ln V) would flatten the part worth seeing
            ax.set_ylim(min(lows[ax]) - 0.03, min(lows[ax]) + 0.8)
    ax_v.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(os.path.join(out, "nll.png"), dpi=90)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6, 3.5))
    seen = set()
    for name, r in firsts:
        lr = tuple(s["lr"] for s in r["steps"])
        if lr in seen:  # most runs share a schedule; draw each schedule once
            continue
        seen.add(lr)
        label = "+".join(f.removeprefix("use_") for f in r["flags"] if f in ("use_warmup", "use_cosine")) or "constant"
        ax.plot([s["iter"] for s in r["steps"]], lr, label=label)
    ax.set_xlabel("optimisation step")
    ax.set_ylabel("learning rate")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(os.path.join(out, "lr.png"), dpi=90)
    plt.close(fig)


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
    print(f"wrote {os.path.join(out_dir, 'report.md')}, nll.png and lr.png")


if __name__ == "__main__":
    configure(globals())
    if seeds < 1:
        sys.exit(f"error: --seeds={seeds} must be at least 1")
    try:
        main(sys.argv[1:])
    except RuntimeError as e:
        sys.exit(f"error: {e}")
    except KeyboardInterrupt:
        sys.exit("interrupted; run the same command again to continue (finished runs are kept)")
