"""
fp32 against bf16 autocast, ms per training step, for the models gptlab's configs train on a CPU:
the table device.py's CPU rule for dtype='auto' rests on (docs/results.md).

    python bench/dtype_table.py                     # every model, two rounds
    python bench/dtype_table.py --models=quickstart,tiny --rounds=3

Each setting runs bench.py in a process of its own, the dtypes alternating (fp32, bf16, fp32,
bf16, ...) so that a slow spell of the machine falls on both; a cell is the median ms/iter of each
round, in order. The last column is the dtype that 'auto' chooses for the model on this machine.
Run it alone: anything else on the cores changes the figures.
"""

import argparse
import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

# name: (what it is, bench.py arguments as the config runs it; steps kept short for the big ones)
MODELS = {
    "quickstart": ("config/train_shakespeare_char_cpu.py: 4 x 128, T 64, B 12",
                   ["config/train_shakespeare_char_cpu.py"]),
    "nanogpt_cpu": ("nanoGPT's CPU recipe (the DI725 command): 4 x 128, T 64, B 12, bias",
                    ["config/train_shakespeare_char.py", "--device=cpu", "--compile=False", "--block_size=64",
                     "--batch_size=12", "--n_layer=4", "--n_head=4", "--n_embd=128", "--dropout=0.0",
                     "--gradient_accumulation_steps=1"]),
    "speedrun": ("config/speedrun_shakespeare_char_cpu.py: 2 x 128, T 64, B 32, RoPE, Muon",
                 ["config/speedrun_shakespeare_char_cpu.py"]),
    "probe": ("config/birthplace_pretrain_cpu.py: 4 x 256, T 128, B 32, RoPE, 257 characters",
              ["config/birthplace_pretrain_cpu.py", "--num_steps=30", "--warmup_steps=5"]),
    "don_char": ("config/train_don_char.py on a CPU: 6 x 384, T 256, B 64",
                 ["config/train_don_char.py", "--device=cpu", "--num_steps=5", "--warmup_steps=2"]),
    "tiny": ("config/train_tiny.py: 2 x 32, T 128, B 32, GPT-2's 50,304-token head",
             ["config/train_tiny.py", "--device=cpu", "--num_steps=10", "--warmup_steps=3"]),
    "jsonl_ablation": ("config/ablate_jsonl.py's model (GPT-2 124M, T 1024), one sequence a step, eager",
                       ["config/ablate_jsonl.py", "--device=cpu", "--compile=False", "--batch_size=1",
                        "--gradient_accumulation_steps=1", "--real_data=False", "--num_steps=5", "--warmup_steps=2"]),
    "gpt2_124m": ("GPT-2 124M: 12 x 768, T 256, B 4",
                  ["--device=cpu", "--n_layer=12", "--n_head=12", "--n_embd=768", "--block_size=256", "--batch_size=4",
                   "--gradient_accumulation_steps=1", "--real_data=False", "--num_steps=5", "--warmup_steps=2"]),
}


def bench_ms(args, dtype, extra):
    """bench.py's median ms/iter for these arguments at dtype."""
    cmd = [sys.executable, os.path.join(ROOT, "bench.py"), *args, f"--dtype={dtype}", *extra]
    p = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    m = re.search(r"median ([\d.]+) ms/iter", p.stdout)
    if p.returncode or not m:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{p.stdout[-2000:]}\n{p.stderr[-2000:]}")
    return float(m.group(1))


def auto_choice(args):
    """What dtype='auto' resolves to for this model on this machine, as bench.py (and train.py) print it."""
    cmd = [sys.executable, os.path.join(ROOT, "bench.py"), *args, "--dtype=auto", "--num_steps=1", "--warmup_steps=0"]
    p = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    m = re.search(r"parameters, cpu, (\w+),", p.stdout)
    return m.group(1) if m else "?"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default=",".join(MODELS), help=f"comma-separated, of {', '.join(MODELS)}")
    parser.add_argument("--rounds", type=int, default=2, help="fp32/bf16 pairs per model")
    parser.add_argument("--extra", default="", help="more bench.py arguments for every run, space-separated")
    args = parser.parse_args()
    extra = args.extra.split()
    print("| model | fp32 ms/iter | bf16 ms/iter | bf16/fp32 | auto |")
    print("|---|---|---|---:|---|")
    for name in args.models.split(","):
        what, bench_args = MODELS[name]
        ms = {"float32": [], "bfloat16": []}
        for _ in range(args.rounds):
            for dtype in ms:
                ms[dtype].append(bench_ms(bench_args, dtype, extra))
        ratio = sorted(ms["bfloat16"])[len(ms["bfloat16"]) // 2] / sorted(ms["float32"])[len(ms["float32"]) // 2]
        cells = [" / ".join(f"{v:,.1f}" for v in ms[d]) for d in ms]
        print(f"| {name}: {what} | {cells[0]} | {cells[1]} | {ratio:.2f} | {auto_choice(bench_args + extra)} |",
              flush=True)


if __name__ == "__main__":
    main()
