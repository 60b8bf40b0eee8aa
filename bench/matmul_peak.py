"""
The chip's own limit: the measured matrix-product rate in each dtype, to set step times against.

    python bench/matmul_peak.py                       # fp32 and bf16, two shapes, on the CPU
    python bench/matmul_peak.py --device=cuda --dtypes=bfloat16,float16

For each (M, K, N) and dtype: the best of --repeats timed runs of --iters products A (M, K) @ B (K, N),
in TFLOP/s (2 * M * K * N per product). bench.py prints a training step's achieved TFLOP/s; the
ratio of the two is how far the step is from what the chip's products can do.
"""

import argparse
import time

import torch

SHAPES = ((4096, 384, 1536), (4096, 4096, 4096), (1024, 768, 3072))


def peak(m, k, n, dtype, device, iters, repeats):
    a = torch.randn(m, k, device=device).to(dtype)
    b = torch.randn(k, n, device=device).to(dtype)
    a @ b  # warm-up: kernels chosen, memory allocated
    best = float("inf")
    for _ in range(repeats):
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(iters):
            a @ b
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        best = min(best, (time.perf_counter() - t0) / iters)
    return 2 * m * k * n / best / 1e12


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, mps")
    ap.add_argument("--dtypes", default="float32,bfloat16", help="comma-separated torch dtype names")
    ap.add_argument("--iters", type=int, default=5, help="products per timed run")
    ap.add_argument("--repeats", type=int, default=3, help="timed runs; the best counts")
    args = ap.parse_args()
    print(f"torch {torch.__version__}, {args.device}, {torch.get_num_threads()} threads")
    print("| M x K x N | " + " | ".join(f"{d} TFLOP/s" for d in args.dtypes.split(",")) + " |")
    print("|---|" + "---:|" * len(args.dtypes.split(",")))
    for m, k, n in SHAPES:
        rates = [peak(m, k, n, getattr(torch, d), args.device, args.iters, args.repeats) for d in args.dtypes.split(",")]
        print(f"| {m} x {k} x {n} | " + " | ".join(f"{r:.2f}" for r in rates) + " |")


if __name__ == "__main__":
    main()
