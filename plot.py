"""
Plot training runs from their metrics logs: NLL against optimisation step and against
wall-clock time, one curve per run.

    python plot.py out-shakespeare-char-cpu
    python plot.py out-speedrun out-shakespeare-char-cpu --to=plots

Every train.py run writes out_dir/log.jsonl (one JSON object per line: the logged steps, the
evaluations and a closing summary). This reads each OUT_DIR's log and writes nll.png (against
step) and nll_time.png (against seconds) into --to: by default the OUT_DIR itself when there
is one, else the current folder. ablate.py draws its report's plots with these functions.
"""

import argparse
import os
import sys

from checkpoint import read_log  # the one reader of log.jsonl


def smooth(ys, window):
    """Running mean over the last window values."""
    out, acc = [], []
    for y in ys:
        acc = (acc + [y])[-window:]
        out.append(sum(acc) / len(acc))
    return out


def pyplot():
    import matplotlib
    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt
    return plt


def plot_nll(runs, path, x="iter", reference=None):
    """Two panels, train NLL (a running mean over a twenty-fifth of each run's logs) and val NLL,
    against x: 'iter' (the optimisation step) or 'elapsed_s' (seconds since the run started,
    evaluations included).
    runs: [(label, train records, eval records)]; the reference run is drawn thick and black.
    Records without x (logs from before elapsed_s was logged) are left out."""
    plt = pyplot()
    fig, (ax_t, ax_v) = plt.subplots(1, 2, figsize=(11, 4.2))
    lows = {ax_t: [], ax_v: []}
    for label, steps, evals in runs:
        style = dict(label=label, lw=2.0 if label == reference else 1.2, color="black" if label == reference else None)
        steps = [s for s in steps if s.get(x) is not None and s.get("train_loss") is not None]
        evals = [e for e in evals if e.get(x) is not None and e.get("val_loss") is not None]
        train_nll = smooth([s["train_loss"] for s in steps], max(1, len(steps) // 25))
        ax_t.plot([s[x] for s in steps], train_nll, **style)
        ax_v.plot([e[x] for e in evals], [e["val_loss"] for e in evals], marker=".", **style)
        lows[ax_t] += train_nll
        lows[ax_v] += [e["val_loss"] for e in evals]
    for ax, what in ((ax_t, "train NLL (running mean)"), (ax_v, "val NLL")):
        ax.set_xlabel("optimisation step" if x == "iter" else "wall time (s)")
        ax.set_ylabel(what)
        ax.grid(alpha=0.3)
        if lows[ax]:  # the first steps' loss (~ln V) would flatten the part worth seeing
            ax.set_ylim(min(lows[ax]) - 0.03, min(lows[ax]) + 0.8)
    ax_v.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def plot_lr(runs, path):
    """The learning rate against step; runs: [(label, train records)]. Runs that share a
    schedule draw it once, under the first one's label."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.5))
    seen = set()
    for label, steps in runs:
        lr = tuple(s["lr"] for s in steps)
        if lr in seen:
            continue
        seen.add(lr)
        ax.plot([s["iter"] for s in steps], lr, label=label)
    ax.set_xlabel("optimisation step")
    ax.set_ylabel("learning rate")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def main(argv):
    parser = argparse.ArgumentParser(description="NLL against step and wall time for train.py runs")
    parser.add_argument("out_dirs", nargs="+", metavar="OUT_DIR", help="a folder train.py wrote (with log.jsonl)")
    parser.add_argument("--to", default="", help="where to write the PNGs (default: the one OUT_DIR, else .)")
    args = parser.parse_args(argv)
    runs = []
    for d in args.out_dirs:
        steps, evals, _ = read_log(os.path.join(d, "log.jsonl"))
        if not steps and not evals:
            sys.exit(f"error: {os.path.join(d, 'log.jsonl')} is missing or empty; is {d} a train.py out_dir?")
        runs.append((os.path.basename(os.path.normpath(d)), steps, evals))
    to = args.to or (args.out_dirs[0] if len(args.out_dirs) == 1 else ".")
    os.makedirs(to, exist_ok=True)
    plot_nll(runs, os.path.join(to, "nll.png"), "iter")
    plot_nll(runs, os.path.join(to, "nll_time.png"), "elapsed_s")
    print(f"wrote {os.path.join(to, 'nll.png')} and {os.path.join(to, 'nll_time.png')}")


if __name__ == "__main__":
    main(sys.argv[1:])
