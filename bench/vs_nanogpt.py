"""
nanoGPT against gptlab on the same CPU workloads, one markdown table: sampling speed, training
ms/iter, and the speedrun's wall time and val loss. nanoGPT and gptlab runs alternate, so that
a drift of the machine's speed hits both.

    git clone https://github.com/karpathy/nanoGPT ../nanoGPT     # unmodified: nothing in it is changed
    python data/shakespeare_char/prepare.py                       # gptlab's data, which both read
    python bench/vs_nanogpt.py --nanogpt_dir=../nanoGPT           # the table, on an idle machine
    OMP_NUM_THREADS=1 python bench/vs_nanogpt.py --nanogpt_dir=../nanoGPT --repeats=1 --sample_tokens=20 \
        --train_iters=30 --nanogpt_iters=100 --speedrun_args=--max_iters=50   # the plumbing in minutes

nanoGPT runs from a work folder (--work_dir, else a temp folder removed at the end) laid out as
its scripts expect their cwd: configurator.py and config/ linked from --nanogpt_dir,
data/shakespeare_char/train.bin and val.bin linked from gptlab's prepared data, and a meta.pkl
written from gptlab's meta.json. Every nanoGPT command is
`python NANOGPT_DIR/train.py config/train_shakespeare_char.py ARGS` there (python puts the
script's folder, with nanoGPT's model.py, on sys.path). RECIPE is nanoGPT's CPU recipe from its
README, with --out_dir in the work folder: --device=cpu --compile=False --eval_iters=20 --log_interval=1 --block_size=64
--batch_size=12 --n_layer=4 --n_head=4 --n_embd=128 --max_iters=N --lr_decay_iters=2000 --dropout=0.0

1. sample: ARGS = --device=cpu --compile=False --batch_size=4 --max_iters=2 --eval_interval=2
   --eval_iters=1 --always_save_checkpoint=True writes a checkpoint of nanoGPT's default character
   model (6 layers, 384 wide, block 256; the small batch only makes it quick, and the speed does not
   depend on the weights). In this process nanoGPT's GPT (its model.py, rebuilt as its sample.py
   does) and gptlab's (checkpoint.load_model) generate --sample_tokens tokens from it: fp32, the
   one-token prompt "\\n", temperature 0.8, top_k 200 (sample.py's defaults), at each of
   --sample_batches, after one warm-up of 4 tokens; tokens/s is the best of --repeats alternating
   runs. gptlab goes through model.generate with its KV cache (the default), once eager and once
   with its one-token step compiled (GPT.compile_decoding, as sample.py --compile=True; the
   warm-up compiles it), for each weight format of --quantize (quantize.py: fp32, bf16 where the
   CPU has bf16 units, int8); nanoGPT's generate runs the whole context every token, in fp32.
   --gpt2_shape=True adds GPT-2 124M's shape, random weights, 100 tokens at batch 1, eager.
2. train: ARGS = RECIPE with N = --train_iters, against gptlab's `train.py
   config/train_shakespeare_char_cpu.py --pad_vocab=False --dtype=float32 --max_iters=N
   --log_interval=1` (the same model, batches and schedule: the script checks the config, and
   pad_vocab=False gives both 65 embedding rows). Each log's median ms/iter over the iterations
   after its first 10, leaving out the one right after each evaluation (nanoGPT's clock counts the
   evaluation in it); the table has the median over --repeats alternating runs.
3. speedrun: the wall time of the whole process, nanoGPT's RECIPE with N = --nanogpt_iters (2000;
   eval_interval 250 as its config, or N where 250 does not divide N, so it evaluates and saves
   at its end) against gptlab's `train.py SPEEDRUN_CONFIG` (--speedrun_config, default the bf16 one,
   which needs a CPU with bf16 units; config/speedrun_shakespeare_char_cpu.py is for any CPU), which
   stops at its target_val_loss; --speedrun_args appends settings to it.
   Then every run's checkpoint (nanoGPT's ckpt.pt is its best evaluation; gptlab's is where it
   stopped) is scored by gptlab's `evaluate.py --task=loss --eval_iters=200 --batch_size=64
   --dataset=shakespeare_char --device=cpu --dtype=float32`: the same seed, so both see the same
   200 batches of 64 at their block_size 64. PASS: gptlab's worst val loss is at most nanoGPT's best.

Every run writes its out_dir and its log into the work folder, which stays after an error (and
with --work_dir). OMP_NUM_THREADS, if set, holds for every process, this one included.
"""

import argparse
import importlib.util
import json
import os
import pickle
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from checkpoint import load_model  # noqa: E402
from model import GPT, GPTConfig  # noqa: E402
from quantize import quantize_error, quantize_model, usable_formats  # noqa: E402

DATA = os.path.join(ROOT, "data", "shakespeare_char")
RECIPE = dict(device="cpu", compile=False, eval_iters=20, log_interval=1, block_size=64, batch_size=12, n_layer=4,
              n_head=4, n_embd=128, lr_decay_iters=2000, dropout=0.0)
# what nanoGPT's config/train_shakespeare_char.py and train.py defaults add to RECIPE; gptlab's config must agree
NANOGPT_REST = dict(learning_rate=1e-3, min_lr=1e-4, beta2=0.99, warmup_iters=100, eval_interval=250, bias=False,
                    gradient_accumulation_steps=1)
ITER_RE = re.compile(r"^iter (\d+): .*?time ([\d.]+) ?ms")  # both: "iter 7: loss 2.1, [lr ..., ]time 51.2ms, ..."
EVAL_RE = re.compile(r"^step (\d+): train loss ([\d.]+), val loss ([\d.]+)")  # both write this line


def check_inputs(nanogpt_dir, data_dir):
    """One-line exits when the nanoGPT checkout or gptlab's prepared data is missing."""
    need = ["train.py", "model.py", "configurator.py", os.path.join("config", "train_shakespeare_char.py")]
    missing = [n for n in need if not os.path.isfile(os.path.join(nanogpt_dir, n))]
    if missing:
        sys.exit(f"error: --nanogpt_dir={nanogpt_dir} has no {', '.join(missing)}; it must be a nanoGPT checkout "
                 f"(git clone https://github.com/karpathy/nanoGPT)")
    for name in ("train.bin", "val.bin", "meta.json"):
        if not os.path.isfile(os.path.join(data_dir, name)):
            sys.exit(f"error: {os.path.join(data_dir, name)} is missing; run: python data/shakespeare_char/prepare.py")


def nanogpt_meta(meta):
    """gptlab's meta.json (a dict) -> the dict nanoGPT's meta.pkl holds: vocab_size, itos, stoi."""
    tok = meta["tokenizer"]
    if tok.get("kind") != "char" or meta.get("dtype") != "uint16":
        raise ValueError(f"expected a character-level uint16 dataset, got {tok.get('kind')} {meta.get('dtype')}")
    chars = tok["chars"]
    return {"vocab_size": len(chars), "itos": dict(enumerate(chars)), "stoi": {ch: i for i, ch in enumerate(chars)}}


def make_work_dir(work, nanogpt_dir, data_dir):
    """Lay out work as nanoGPT's scripts expect their cwd (links only; nothing in either repository changes)."""
    os.makedirs(os.path.join(work, "data", "shakespeare_char"), exist_ok=True)
    for name in ("configurator.py", "config"):
        link = os.path.join(work, name)
        if not os.path.lexists(link):
            os.symlink(os.path.join(nanogpt_dir, name), link)
    for name in ("train.bin", "val.bin"):
        link = os.path.join(work, "data", "shakespeare_char", name)
        if not os.path.lexists(link):
            os.symlink(os.path.join(data_dir, name), link)
    with open(os.path.join(data_dir, "meta.json")) as f:
        meta = json.load(f)
    # a pickle only because nanoGPT's train.py reads its vocabulary so; gptlab itself never loads one
    with open(os.path.join(work, "data", "shakespeare_char", "meta.pkl"), "wb") as f:
        pickle.dump(nanogpt_meta(meta), f)


def config_mismatch(path, want):
    """The keys of want that the config file at path sets otherwise (or not at all): 'key=theirs (want)'."""
    conf = {}
    exec(open(path).read(), {}, conf)
    return [f"{k}={conf.get(k, 'unset')!r} (nanoGPT: {v!r})" for k, v in want.items() if conf.get(k, "unset") != v]


def run(cmd, cwd, log_path, what):
    """Run cmd (its output to log_path); returns (output, wall seconds). On failure prints the
    output's last lines and exits with one line."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    t0 = time.perf_counter()
    p = subprocess.run(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    wall = time.perf_counter() - t0
    with open(log_path, "w") as f:
        f.write(p.stdout)
    if p.returncode != 0:
        print("\n".join(p.stdout.splitlines()[-20:]))
        sys.exit(f"error: {what} failed (exit code {p.returncode}): {' '.join(cmd)}; log in {log_path}")
    return p.stdout, wall


def iter_times(log, skip=10):
    """ms per iteration from a nanoGPT or gptlab training log: the iterations after the first
    skip, leaving out each one that follows an evaluation line."""
    times, after_eval = [], False
    for line in log.splitlines():
        if EVAL_RE.match(line):
            after_eval = True
        elif m := ITER_RE.match(line):
            times.append(None if after_eval else float(m.group(2)))
            after_eval = False
    return [t for t in times[skip:] if t is not None]


def evaluations(log):
    """Every evaluation line of a training log, as (step, train loss, val loss)."""
    return [(int(m.group(1)), float(m.group(2)), float(m.group(3))) for m in map(EVAL_RE.match, log.splitlines()) if m]


def evaluate_loss(out_dir, work, name, args):
    """(val loss, checkpoint iteration) of out_dir/ckpt.pt from gptlab's evaluate.py --task=loss."""
    cmd = [sys.executable, os.path.join(ROOT, "evaluate.py"), f"--out_dir={out_dir}", "--task=loss",
           f"--eval_iters={args.eval_iters}", f"--batch_size={args.eval_batch_size}", "--dataset=shakespeare_char",
           "--device=cpu", "--dtype=float32"]  # the seed is evaluate.py's default: the same batches for every run
    out, _ = run(cmd, ROOT, os.path.join(work, f"evaluate-{name}.log"), f"evaluate.py on {name}")
    loss = re.search(r"^val loss ([\d.]+), perplexity", out, re.M)
    it = re.search(r"ckpt\.pt \(iter (\d+)\)", out)
    if not loss:
        sys.exit(f"error: no 'val loss' line in evaluate.py's output for {out_dir}")
    return float(loss.group(1)), int(it.group(1)) if it else None


def import_nanogpt_model(nanogpt_dir):
    """nanoGPT's model.py as the module 'nanogpt_model' (gptlab has a model.py of its own)."""
    spec = importlib.util.spec_from_file_location("nanogpt_model", os.path.join(nanogpt_dir, "model.py"))
    module = importlib.util.module_from_spec(spec)
    sys.modules["nanogpt_model"] = module  # dataclasses looks GPTConfig's module up there
    spec.loader.exec_module(module)
    return module


def time_sampling(models, prompt, n_tokens, repeats, seed=1337):
    """Best tokens/s of each of models ({name: generate(idx, n)}), alternating them repeats times."""
    for generate in models.values():
        generate(prompt, 4)  # warm up
    best = {name: 0.0 for name in models}
    for _ in range(repeats):
        for name, generate in models.items():
            torch.manual_seed(seed)
            t0 = time.perf_counter()
            generate(prompt, n_tokens)
            best[name] = max(best[name], prompt.size(0) * n_tokens / (time.perf_counter() - t0))
    return best


def gptlab_models(load, formats, compiled=(False, True)):
    """gptlab's side of the sampling table, as (name, model): each weight format, eager and with its
    one-token step compiled (torch.compile runs at the first call). load() makes a fresh fp32 GPT."""
    models = []
    for fmt in formats:
        for c in compiled:
            model = quantize_model(load().eval(), fmt)
            if c:
                model.compile_decoding()
            models.append(("gptlab" + ("" if fmt == "none" else f" {fmt}") + (", compiled decoding" if c else ""),
                           model))
    return models


def sample_part(args, work, rows):
    """Workload 1: tokens/s of nanoGPT's and gptlab's generate on one nanoGPT-written checkpoint."""
    ckpt_dir = os.path.join(work, "nanogpt-char")
    print("running nanoGPT train for a default-size character checkpoint (2 iterations)...", flush=True)
    run([sys.executable, os.path.join(args.nanogpt_dir, "train.py"), "config/train_shakespeare_char.py", "--device=cpu",
         "--compile=False", "--batch_size=4", "--max_iters=2", "--eval_interval=2", "--eval_iters=1",
         "--always_save_checkpoint=True", f"--out_dir={ckpt_dir}"], work, os.path.join(work, "nanogpt-char.log"),
        "nanoGPT's checkpoint run")
    nano = import_nanogpt_model(args.nanogpt_dir)
    ckpt = torch.load(os.path.join(ckpt_dir, "ckpt.pt"), map_location="cpu", weights_only=True)
    theirs = nano.GPT(nano.GPTConfig(**ckpt["model_args"]))
    theirs.load_state_dict({k.removeprefix("_orig_mod."): v for k, v in ckpt["model"].items()})  # as its sample.py
    tok = load_model("resume", ckpt_dir, DATA)[1]
    ours = gptlab_models(lambda: load_model("resume", ckpt_dir, DATA)[0], args.quantize)
    # a compiled graph per format and batch size, all of GPT.cached_step: torch must keep them all, not fall back
    torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit,
                                               len(args.quantize) * len(args.sample_batches))
    shapes = [("char 6x384 (nanoGPT ckpt)", theirs, ours, args.sample_tokens, args.sample_batches)]
    if args.gpt2_shape:  # GPT-2 124M's shape, random weights

        def gpt2_shaped():
            torch.manual_seed(args.seed)  # the same weights for every format
            return GPT(GPTConfig(block_size=1024, vocab_size=50257, n_layer=12, n_head=12, n_embd=768))

        torch.manual_seed(args.seed)
        shapes.append(("GPT-2 124M shape", nano.GPT(nano.GPTConfig(block_size=1024, vocab_size=50257, n_layer=12,
                                                                     n_head=12, n_embd=768, dropout=0.0, bias=True)),
                       gptlab_models(gpt2_shaped, args.quantize, compiled=(False,)), 100, [1]))
    for label, theirs, ours, n_tokens, batches in shapes:
        theirs.eval()
        gen = lambda: torch.Generator().manual_seed(args.seed)  # noqa: E731
        models = {"nanoGPT": lambda idx, n: theirs.generate(idx, n, temperature=0.8, top_k=200)}
        for name, model in ours:
            models[name] = lambda idx, n, model=model: model.generate(idx, n, temperature=0.8, top_k=200,
                                                                       generator=gen())
        for B in batches:
            print(f"sampling {label}, batch {B}, {n_tokens} tokens, nanoGPT and gptlab...", flush=True)
            prompt = torch.tensor([tok.encode("\n")] * B, dtype=torch.long)  # (B, 1)
            with torch.no_grad():
                tps = time_sampling(models, prompt, n_tokens, args.repeats, args.seed)
            for name in list(models)[1:]:
                rows.append((f"sample {label}, batch {B}, {n_tokens} tokens: tokens/s (best of {args.repeats}), {name}",
                             f"{tps['nanoGPT']:,.0f}", f"{tps[name]:,.0f}",
                             f"{tps[name] / tps['nanoGPT']:.2f}x (gptlab/nanoGPT)"))


def nanogpt_cmd(args, iters, out_dir, eval_at_end=False):
    """nanoGPT's CPU recipe to iters iterations (cwd: the work folder). eval_at_end: where its
    eval_interval of 250 does not divide iters, evaluate every iters instead, so it saves at its end."""
    extra = [f"--eval_interval={iters}"] if eval_at_end and iters % 250 else []
    return [sys.executable, os.path.join(args.nanogpt_dir, "train.py"), "config/train_shakespeare_char.py",
            *[f"--{k}={v}" for k, v in RECIPE.items()], f"--max_iters={iters}", *extra, f"--out_dir={out_dir}"]


def train_part(args, work, rows):
    """Workload 2: median ms/iter of the same small training run in nanoGPT and in gptlab."""
    conf = os.path.join(ROOT, "config", "train_shakespeare_char_cpu.py")
    if diff := config_mismatch(conf, {k: v for k, v in {**RECIPE, **NANOGPT_REST}.items()
                                      if k not in ("log_interval", "device", "compile")}):
        print(f"warning: config/train_shakespeare_char_cpu.py differs from nanoGPT's recipe: {', '.join(diff)}")
    ms = {"nanoGPT": [], "gptlab": []}
    for r in range(args.repeats):
        print(f"running nanoGPT train, {args.train_iters} iterations (run {r + 1}/{args.repeats})...", flush=True)
        out, _ = run(nanogpt_cmd(args, args.train_iters, os.path.join(work, f"nanogpt-train-{r}")), work,
                     os.path.join(work, f"nanogpt-train-{r}.log"), "nanoGPT's train.py")
        ms["nanoGPT"].append(statistics.median(iter_times(out)))
        print(f"running gptlab train, {args.train_iters} iterations (run {r + 1}/{args.repeats})...", flush=True)
        out, _ = run([sys.executable, os.path.join(ROOT, "train.py"), "config/train_shakespeare_char_cpu.py",
                      "--pad_vocab=False", "--dtype=float32", f"--max_iters={args.train_iters}", "--log_interval=1",
                      f"--out_dir={os.path.join(work, f'gptlab-train-{r}')}"], ROOT,
                     os.path.join(work, f"gptlab-train-{r}.log"), "gptlab's train.py")
        ms["gptlab"].append(statistics.median(iter_times(out)))
    nano_ms, ours_ms = statistics.median(ms["nanoGPT"]), statistics.median(ms["gptlab"])
    rows.append((f"train 4x128, batch 12x64, fp32: ms/iter (median of {args.repeats} runs' medians)",
                 f"{nano_ms:.1f}", f"{ours_ms:.1f}", f"{nano_ms / ours_ms:.2f}x (nanoGPT/gptlab ms, >=1: gptlab as fast)"))


def speedrun_part(args, work, rows):
    """Workload 3: wall time to a trained model, and its val loss, nanoGPT's recipe against gptlab's speedrun."""
    wall = {"nanoGPT": [], "gptlab": []}  # each run's seconds
    logged = {"nanoGPT": [], "gptlab": []}  # each run's last evaluation, as its log says
    losses = {"nanoGPT": [], "gptlab": []}  # evaluate.py's (val loss, checkpoint iteration) of each run
    for r in range(args.repeats):
        for name in ("nanoGPT", "gptlab"):
            out_dir = os.path.join(work, f"{name.lower()}-speedrun-{r}")
            if name == "nanoGPT":
                what, cwd = f"{args.nanogpt_iters} iterations", work
                cmd = nanogpt_cmd(args, args.nanogpt_iters, out_dir, eval_at_end=True)
            else:
                what, cwd = args.speedrun_config, ROOT
                cmd = [sys.executable, os.path.join(ROOT, "train.py"), args.speedrun_config, f"--out_dir={out_dir}",
                       *args.speedrun_args.split()]
            print(f"running {name} speedrun, {what} (run {r + 1}/{args.repeats})...", flush=True)
            out, sec = run(cmd, cwd, out_dir + ".log", f"{name}'s train.py")
            wall[name].append(sec)
            step, _, val = evaluations(out)[-1]
            reached = " (target reached)" if "<= target_val_loss=" in out else ""  # gptlab's stopping line
            logged[name].append(f"iter {step}, val {val:.4f}{reached}")
            losses[name].append(evaluate_loss(out_dir, work, f"{name.lower()}-speedrun-{r}", args))
    mean = {k: statistics.mean(v) for k, v in wall.items()}
    runs = {k: ", ".join(f"{s:.1f}" for s in v) for k, v in wall.items()}
    rows.append(("speedrun: wall s of the whole process (runs; mean)", f"{runs['nanoGPT']}; {mean['nanoGPT']:.1f}",
                 f"{runs['gptlab']}; {mean['gptlab']:.1f}",
                 f"{mean['gptlab'] / mean['nanoGPT']:.2f} (gptlab/nanoGPT; target <= 0.30)"))
    rows.append(("speedrun: last evaluation in its log", "; ".join(logged["nanoGPT"]), "; ".join(logged["gptlab"]), ""))
    scored = {k: "; ".join(f"{loss:.4f} (ckpt iter {it})" for loss, it in v) for k, v in losses.items()}
    ok = max(loss for loss, _ in losses["gptlab"]) <= min(loss for loss, _ in losses["nanoGPT"])
    rows.append((f"speedrun: val loss, evaluate.py {args.eval_iters}x{args.eval_batch_size} batches, fp32",
                 scored["nanoGPT"], scored["gptlab"], "PASS (gptlab <= nanoGPT)" if ok else "FAIL (gptlab > nanoGPT)"))


def git_commit(folder):
    """The short commit of the checkout at folder ('-dirty' if tracked files changed), or 'not a git checkout'."""
    def git(*a):
        return subprocess.run(["git", "-C", folder, *a], capture_output=True, text=True).stdout.strip()
    try:
        commit = git("rev-parse", "--short", "HEAD")
        return commit + ("-dirty" if git("status", "--porcelain", "--untracked-files=no") else "") if commit \
            else "not a git checkout"
    except OSError:
        return "not a git checkout"


def machine():
    """One line: the CPU, torch, threads, date."""
    cpu = "unknown CPU"
    if os.path.exists("/proc/cpuinfo"):
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
    return (f"{cpu}, {os.cpu_count()} CPUs; torch {torch.__version__}, {torch.get_num_threads()} threads "
            f"(OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}); {time.strftime('%Y-%m-%d %H:%M')}")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--nanogpt_dir", required=True,
                    help="a nanoGPT checkout (git clone https://github.com/karpathy/nanoGPT)")
    ap.add_argument("--parts", default="sample,train,speedrun", help="which workloads, comma-separated")
    ap.add_argument("--repeats", type=int, default=2, help="alternating runs of each, per workload")
    ap.add_argument("--work_dir", default="",
                    help="keep the work folder (logs, checkpoints) here ('': a temp folder, removed at the end)")
    ap.add_argument("--sample_tokens", type=int, default=500, help="sample: new tokens per sequence")
    ap.add_argument("--sample_batches", default="1,8", help="sample: batch sizes, comma-separated")
    ap.add_argument("--gpt2_shape", type=lambda s: s.lower() == "true", default=False,
                    help="sample: also GPT-2 124M's shape with random weights (True/False; slow)")
    ap.add_argument("--train_iters", type=int, default=400, help="train: iterations of each run")
    ap.add_argument("--nanogpt_iters", type=int, default=2000, help="speedrun: nanoGPT's iterations")
    ap.add_argument("--speedrun_config", default="config/speedrun_shakespeare_char_cpu_bf16.py",
                    help="speedrun: gptlab's config, relative to the repository")
    ap.add_argument("--speedrun_args", default="",
                    help="speedrun: extra --key=value settings for gptlab's run, space-separated (quick: --max_iters=50)")
    ap.add_argument("--eval_iters", type=int, default=200, help="speedrun: evaluate.py's batches")
    ap.add_argument("--eval_batch_size", type=int, default=64, help="speedrun: evaluate.py's --batch_size")
    ap.add_argument("--seed", type=int, default=1337, help="sample: the sampling seed")
    ap.add_argument("--quantize", default="auto",
                    help="sample: gptlab's weight formats, comma-separated (none,bf16,int8); auto: all this CPU runs")
    args = ap.parse_args(argv)
    args.nanogpt_dir = os.path.abspath(args.nanogpt_dir)
    args.sample_batches = [int(b) for b in args.sample_batches.split(",")]
    args.quantize = usable_formats("cpu") if args.quantize == "auto" else args.quantize.split(",")
    if error := next(filter(None, (quantize_error(f, "cpu") for f in args.quantize)), None):
        sys.exit(f"error: {error}")
    parts = args.parts.split(",")
    if "train" in parts and args.train_iters < 20:
        sys.exit(f"error: --train_iters={args.train_iters}: the median leaves out the first 10, so give at least 20")
    if unknown := set(parts) - {"sample", "train", "speedrun"}:
        sys.exit(f"error: --parts: unknown {', '.join(sorted(unknown))}; choose from sample, train, speedrun")
    check_inputs(args.nanogpt_dir, DATA)
    if "speedrun" in parts and not os.path.isfile(os.path.join(ROOT, args.speedrun_config)):
        sys.exit(f"error: --speedrun_config={args.speedrun_config} does not exist in {ROOT}")

    work = os.path.abspath(args.work_dir) if args.work_dir else tempfile.mkdtemp(prefix="vs_nanogpt-")
    make_work_dir(work, args.nanogpt_dir, DATA)
    print(f"work folder {work}; nanoGPT {args.nanogpt_dir} ({git_commit(args.nanogpt_dir)})", flush=True)
    rows = []
    for part in parts:
        {"sample": sample_part, "train": train_part, "speedrun": speedrun_part}[part](args, work, rows)
    if not args.work_dir:
        shutil.rmtree(work)  # after an error it stays, with the log the error names
    print(f"\ngptlab {git_commit(ROOT)} against nanoGPT ({git_commit(args.nanogpt_dir)}); {machine()}")
    print("command: python bench/vs_nanogpt.py " + " ".join(argv if argv is not None else sys.argv[1:]) + "\n")
    print("| workload | nanoGPT | gptlab | ratio |\n|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
