"""
Time training steps (forward, backward, optimizer) for any model config, without the
rest of train.py: no evaluation, no checkpoints.

    python bench.py config/train_shakespeare_char_cpu.py
    python bench.py --n_layer=12 --n_embd=768 --block_size=1024 --batch_size=8 --real_data=False
    python bench.py config/train_gpt2.py --profile=True      # writes a trace for chrome://tracing
    python bench.py config/train_shakespeare_char.py --mode=sample --device=cpu --compile=False
    python bench.py --real_data=False --device=cpu --batch_size=1 --block_size=256 --gradient_accumulation_steps=1 \
        --num_steps=3 --warmup_steps=1 --optimizer=adafactor       # GPT-2 124M's memory with Adafactor

Under torchrun it times DDP, or FSDP with --fsdp=True, and every rank reports its own memory:

    torchrun --standalone --nproc_per_node=2 bench.py --real_data=False --device=cpu --dtype=float32 \
        --batch_size=1 --block_size=256 --gradient_accumulation_steps=2 --num_steps=3 --warmup_steps=1 --fsdp=True

--mode=sample times generation instead: tokens/s of model.generate() for sample_tokens new
tokens at each of sample_batches, for each weight format of --quantize (quantize.py), with the KV
cache on and off in the same process, beside the floor: the time that the step's matrix products
alone take (every weight matrix, in that format, times a batch of one-token activations, in
sequence), the bytes of weights they read per token, and the fraction of the floor reached.
--compile=True compiles the cached one-token step (GPT.compile_decoding); --profile=True traces 20
cached steps of the first format.

    python bench.py config/train_shakespeare_char.py --mode=sample --device=cpu --dtype=float32
    python bench.py config/train_shakespeare_char.py --mode=sample --device=cpu --dtype=float32 --quantize=int8

--mode=head times the LM head and its loss alone, forward and backward, on batch_size * block_size
tokens of random n_embd-wide hidden states: the whole logits with F.cross_entropy (GPT.forward with
--fused_loss=off), against the tiles of fused_loss.linear_cross_entropy (--fused_loss=on), each in a
process of its own, with the peak memory each needs (see bench_head). docs/results.md, "The LM head
and its loss", has the figures.

    python bench.py config/train_tiny.py --mode=head --real_data=False --vocab_size=50257 --device=cpu \
        --dtype=bfloat16 --num_steps=5 --warmup_steps=1

Takes the model's flags (every GPTConfig field) and the keys below. A config file written for
train.py works too: the keys that bench.py has no use for (out_dir, eval_interval, ...) are
skipped. The batch and step code is the one train.py uses (data/loader.py, optim.py).
Memory, per rank: the bytes this rank holds in parameters, gradients (at their peak, before the
optimizer step) and optimizer state (FSDP: its shards only), the process's peak RSS, and on CUDA
the peak of allocated GPU memory; run each setting in its own process, since peak RSS never goes down.
"""

import copy
import multiprocessing
import os
import resource
import sys
import time
from dataclasses import fields

import numpy as np
import torch
import torch.nn.functional as F

from configurator import configure
from data.common import dataset_dir, load_meta, open_tokens
from data.loader import draw_batch_starts, get_batch
from device import autocast_context, lookup_peak_flops, resolve_device, resolve_dtype, setup_device
from fused_loss import linear_cross_entropy
from model import GPT, GPTConfig
from optim import configure_optimizers, optimizer_step, scaling_law_lr
from parallel import build_model, fsdp_error, sync_gradients, unfuse, wrap_ddp
from quantize import LINEARS, quantize_error, quantize_model, usable_formats, weight_bytes

# ----------------------------------------------------------------------------- config
# model: every field of model.GPTConfig is a key (the defaults are GPT-2 124M)
globals().update({f.name: f.default for f in fields(GPTConfig)})
vocab_size = None  # None: from the dataset's meta.json (random data: GPT-2's 50257)
pad_vocab = True  # as train.py's new runs
# data and batches
dataset = "shakespeare_char"  # a prepared folder under data/ (with real_data)
data_dir = ""  # or any folder holding train.bin and meta.json (overrides dataset)
batch_size = 12  # sequences per micro-step per rank
block_size = 1024
gradient_accumulation_steps = 5 * 8  # micro-steps per timed step, as train.py's default
# optimizer, as train.py's keys
optimizer = "adamw"  # 'adamw', 'adafactor' or 'muon', as train.py
learning_rate = 6e-4  # or 'auto'
muon_lr = 0.02  # with optimizer='muon': the matrices' rate
weight_decay = 1e-1  # on weight matrices only
beta1 = 0.9  # AdamW's first-moment decay
beta2 = 0.95  # AdamW's second-moment decay
grad_clip = 1.0  # clip the global gradient norm to this (0: off)
# system
device = "auto"  # 'auto' (cuda, then mps, then cpu), 'cpu', 'cuda', 'cuda:1', 'mps'
dtype = "auto"  # 'auto' (as train.py), 'float32', 'bfloat16', 'float16'
compile = False  # torch.compile the model (or, with mode='sample', the one-token step)
peak_flops = 0.0  # device peak FLOP/s for MFU; 0 looks up known GPUs
seed = 1337  # initialisation and batches
fsdp = False  # under torchrun: FSDP2 instead of DDP (train.py's key)
activation_checkpointing = False  # recompute each block's activations in backward (train.py's key)
# bench.py's own
real_data = True  # batches from data/<dataset>/train.bin; False: random token ids
check_batches = True  # check every batch's ids against the vocabulary on the CPU, as train.py does (False: to time the check)
num_steps = 50  # timed steps, after warmup_steps untimed ones
warmup_steps = 10  # untimed steps first (allocation, compilation)
profile = False  # torch.profiler trace of a few steps, written to bench_trace.json
mode = "train"  # 'train': training steps; 'sample': generate() with the KV cache on and off; 'head': the LM head's loss
sample_tokens = 500  # --mode=sample: new tokens per sequence
sample_batches = (1, 8)  # --mode=sample: the batch sizes to time
quantize = "auto"  # --mode=sample: weight formats to time, comma-separated ('none,int8'); 'auto': all this device runs
# ------------------------------------------------------------------------------
AUTO_KEYS = ["learning_rate"]


def local_bytes(tensors):
    """Bytes of these tensors on this rank: a DTensor (FSDP) counts only its local shard."""
    local = [t.to_local() if hasattr(t, "to_local") else t for t in tensors if torch.is_tensor(t)]
    return sum(t.numel() * t.element_size() for t in local)


def main():
    distributed = int(os.environ.get("RANK", -1)) != -1  # under torchrun
    rank, world = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
    device_ = resolve_device(device)
    if distributed and device_.startswith("cuda"):
        device_ = f"cuda:{os.environ['LOCAL_RANK']}"
    setup_device(device_)  # TF32 on a GPU, flush denormals on a CPU: as train.py
    dtype_ = resolve_dtype(dtype, device_)
    device_type = device_.split(":")[0]
    sharded = fsdp and distributed
    if sharded and (error := fsdp_error(optimizer, dtype_)):
        raise ValueError(error)
    if gradient_accumulation_steps % world:
        raise ValueError(f"gradient_accumulation_steps={gradient_accumulation_steps} is not divisible by {world} ranks")
    accum = gradient_accumulation_steps // world
    if distributed:
        import torch.distributed as dist
        dist.init_process_group("nccl" if device_type == "cuda" else "gloo")
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    if real_data:
        ddir = dataset_dir(dataset, data_dir)
        meta = load_meta(ddir)
        data = open_tokens(ddir, "train", meta)
        vocab = vocab_size or meta["vocab_size"]
        checked = meta["vocab_size"] if check_batches else None
    else:
        vocab = vocab_size or GPTConfig.vocab_size
        data = rng.integers(0, vocab, size=max(100 * block_size, 1_000_000), dtype=np.int64)
        checked = vocab if check_batches else None

    model_args = {f.name: globals()[f.name] for f in fields(GPTConfig)}
    model_args["vocab_size"] = vocab
    if mode == "sample":
        formats = usable_formats(device_) if quantize == "auto" else [f.strip() for f in quantize.split(",")]
        if error := next(filter(None, (quantize_error(f, device_) for f in formats)), None):
            raise ValueError(error)
        model = GPT(GPTConfig(**model_args)).to(device_)
        return bench_sample(model, formats, device_, dtype_, autocast_context(device_, dtype_))
    if mode == "head":
        return bench_head(GPTConfig(**model_args), device_, dtype_)
    if quantize != "auto":
        raise ValueError("--quantize is for --mode=sample: training keeps its weights in fp32")
    model = build_model(GPTConfig(**model_args), None, device_, dtype_, sharded, activation_checkpointing,
                        compile)  # as train.py builds it; FSDP compiles each block
    lr = scaling_law_lr(model.num_body_params()) if learning_rate == "auto" else learning_rate
    optimizers = configure_optimizers(model, weight_decay, lr, (beta1, beta2), device_type, optimizer, muon_lr)
    unfuse(optimizers, sharded)
    step_model = torch.compile(model) if compile and not sharded else model
    if distributed and not sharded:
        step_model = wrap_ddp(step_model, device_)
    grad_peak = [0]
    ctx = autocast_context(device_, dtype_)
    scaler = torch.amp.GradScaler(device_type, enabled=(dtype_ == "float16"))
    tokens_per_iter = gradient_accumulation_steps * batch_size * block_size

    def step():
        starts = draw_batch_starts(rng, len(data), block_size, gradient_accumulation_steps, batch_size)
        for micro in range(accum):
            X, Y = get_batch(data, starts[rank * accum + micro], block_size, device_, checked,
                             getattr(data, "filename", "random ids"))
            if distributed:
                sync_gradients(step_model, model, sharded, micro == accum - 1)
            with ctx:
                _, loss = step_model(X, Y)
                loss = loss / accum
            scaler.scale(loss).backward()
        grad_peak[0] = max(grad_peak[0], local_bytes(p.grad for p in model.parameters()))
        optimizer_step(optimizers, scaler, model, grad_clip)
        return loss.item()  # waits for the device, so the clock measures finished work

    say = print if rank == 0 else (lambda *a, **k: None)
    mode_text = f", {world} ranks, {'FSDP' if sharded else 'DDP'}" if distributed else ""
    say(f"{model.num_params() / 1e6:.2f}M parameters, {device_}, {dtype_}, compile={compile}, {optimizer}, "
        f"lr {lr:.3g}, {tokens_per_iter:,} tokens/iter, {'real' if real_data else 'random'} data{mode_text}")
    if device_type == "cuda":
        torch.cuda.reset_peak_memory_stats(device_)
    for _ in range(warmup_steps):
        step()
    if profile:
        from torch.profiler import ProfilerActivity, profile as torch_profile
        acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device_type == "cuda" else [])
        with torch_profile(activities=acts, record_shapes=True) as prof:
            for _ in range(5):
                step()
        prof.export_chrome_trace("bench_trace.json")
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=15))
        print("wrote bench_trace.json")
    times = []
    for _ in range(num_steps):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    dt = float(np.median(times))
    mfu = model.estimate_mfu(tokens_per_iter, dt, peak_flops or lookup_peak_flops(device_), world)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    mib = 2**20
    params = local_bytes(model.parameters()) / mib
    state = local_bytes(t for opt in optimizers for s in opt.state.values() for t in s.values()) / mib
    held = f"parameters {params:.1f} MiB, gradients {grad_peak[0] / mib:.1f} MiB, optimizer state {state:.1f} MiB " \
           f"(together {params + grad_peak[0] / mib + state:.1f} MiB)"
    gpu = f", peak CUDA allocated {torch.cuda.max_memory_allocated(device_) / mib:.0f} MiB" \
        if device_type == "cuda" else ""
    say(f"median {dt * 1000:.2f} ms/iter (p10 {np.percentile(times, 10) * 1000:.2f}, "
        f"p90 {np.percentile(times, 90) * 1000:.2f}), {tokens_per_iter / dt:,.0f} tokens/s"
        + (f", MFU {mfu * 100:.2f}%" if mfu else ""))
    line = f"{held}, peak RSS {rss:.0f} MiB{gpu}"
    if not distributed:
        return print(f"memory: {line}")
    lines = [None] * world
    dist.all_gather_object(lines, line)
    for r, text in enumerate(lines):
        say(f"memory, rank {r}: {text}")
    dist.destroy_process_group()


def step_products(model):
    """The matrix products of a decoding step, as (function of a (B, in) batch, in, bytes of weights
    it reads): every Linear (the blocks' and the LM head, in whatever format quantize.py left
    them) and Synthesizer's W2."""
    products = [(m, m.weight.shape[1], weight_bytes(m)) for m in model.modules() if isinstance(m, LINEARS)]
    products += [(lambda x, w=a.w2: x @ w, a.w2.shape[0], a.w2.numel() * a.w2.element_size())
                 for a in model.modules() if hasattr(a, "w2")]  # (B, hs) x (hs, block_size)
    return products


def matmul_floor(model, B, device, ctx, repeats=50):
    """Seconds per decoding step for its matrix products alone (step_products), each applied to a
    (B, in) batch of activations, in sequence, best of `repeats`. What is left of the step above
    this is overhead (per-op dispatch, small allocations, attention and the cache, Python)."""
    products = step_products(model)
    xs = {n: torch.randn(B, n, device=device) for _, n, _ in products}
    best = float("inf")
    with torch.no_grad(), ctx:
        for _ in range(repeats):
            t0 = time.perf_counter()
            for product, n, _ in products:
                y = product(xs[n])
            y.sum().item()  # waits for the device
            best = min(best, time.perf_counter() - t0)
    return best


def bench_sample(fp32_model, formats, device, dtype, ctx):
    """Print a table of generation speed from a one-token prompt (random weights: the speed
    does not depend on them), for each weight format, cache on and off, against the matmul floor.
    Sampling, not greedy, with the same seed every time (temperature 0.8, top_k 200: sample.py's
    defaults). Per token: a batch of B makes B tokens per step, for one read of the weights."""
    fp32_model.eval()
    models = {fmt: quantize_model(copy.deepcopy(fp32_model), fmt) for fmt in formats}
    if compile:  # a graph per format and batch size, all of GPT.cached_step: torch must keep them all, not fall back
        torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit,
                                                   len(formats) * len(sample_batches))
        for model in models.values():
            model.compile_decoding(mode="reduce-overhead" if device.startswith("cuda") else None)
    print(f"{fp32_model.num_params() / 1e6:.2f}M parameters, block_size {fp32_model.config.block_size}, {device}, "
          f"{dtype}, compile={compile} (cached step only), {sample_tokens} new tokens per sequence, weights "
          f"{', '.join(formats)}")
    print("| batch | weights | KV cache | seconds | tokens/s | ms/token | weights read, MB/token | "
          "matmul floor, ms/token | of floor | cache speedup |\n|---|---|---|---|---|---|---|---|---|---|")
    gen = lambda: torch.Generator(device=device).manual_seed(seed)  # noqa: E731
    kw = dict(temperature=0.8, top_k=200)
    for B in sample_batches:
        prompt = torch.zeros(B, 1, dtype=torch.long, device=device)
        for fmt, model in models.items():
            floor = matmul_floor(model, B, device, ctx) / B  # seconds per token
            mb = sum(b for _, _, b in step_products(model)) / B / 1e6
            seconds = {}
            for use_cache in (True, False):
                with ctx:
                    model.generate(prompt, 8, use_cache=use_cache, generator=gen(), **kw)  # warm up (and compile)
                    t0 = time.perf_counter()
                    out = model.generate(prompt, sample_tokens, use_cache=use_cache, generator=gen(), **kw)
                    out[:, -1].cpu()  # waits for the device
                seconds[use_cache] = s = time.perf_counter() - t0
                per_token = s / (B * sample_tokens)
                speedup = "" if use_cache else f"{seconds[False] / seconds[True]:.1f}x"
                print(f"| {B} | {fmt} | {'on' if use_cache else 'off'} | {s:.2f} | {1 / per_token:,.0f} | "
                      f"{per_token * 1e3:.3f} | {mb:.3g} | {floor * 1e3:.3f} | {floor / per_token:.0%} | {speedup} |",
                      flush=True)
    if profile:  # one decoding step's ops: what is not a matmul is overhead
        from torch.profiler import ProfilerActivity, profile as torch_profile
        prompt = torch.zeros(sample_batches[0], 1, dtype=torch.long, device=device)
        acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.startswith("cuda") else [])
        with ctx, torch_profile(activities=acts, record_shapes=True) as prof:
            models[formats[0]].generate(prompt, 20, generator=gen(), **kw)
        prof.export_chrome_trace("bench_trace.json")
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=15))
        print(f"wrote bench_trace.json (20 cached steps, {formats[0]} weights)")


def bench_head(cfg, device, dtype):
    """Print a table of the LM head and its loss, forward and backward, on batch_size * block_size
    tokens: the whole logits and F.cross_entropy ('full', as GPT.forward with fused_loss='off') against
    linear_cross_entropy ('fused'), each timed in a fresh process (head_step), on the same random
    hidden states, head and targets. With --compile=True the full one is compiled; the fused one runs
    eagerly whatever (torch.compile stops before it: see model.py)."""
    N, C, V, padded = batch_size * block_size, cfg.n_embd, cfg.vocab_size, cfg.padded_vocab
    print(f"LM head and loss, forward + backward: {N:,} tokens, n_embd {C}, vocab {V:,} ({padded:,} rows), "
          f"{device}, {dtype}, {torch.get_num_threads()} threads, compile={compile} (full only), "
          f"median of {num_steps} after {warmup_steps}")
    print("| loss | ms | peak MiB | loss value |\n|---|---|---|---|")
    spawn = multiprocessing.get_context("spawn")  # a new interpreter: its peak memory is its own
    results = {}
    for method in ("full", "fused"):
        with spawn.Pool(1) as pool:
            results[method] = ms, peak, value = pool.apply(
                head_step, (method, N, C, V, padded, device, dtype, num_steps, warmup_steps, compile, seed))
        print(f"| {method} | {ms:.1f} | {peak / 2**20:.1f} | {value:.6f} |", flush=True)
    (a, pa, _), (b, pb, _) = results["full"], results["fused"]
    print(f"fused: {a / b:.2f}x the speed, {pb / max(pa, 1):.1%} of the peak memory "
          f"(both hold the head's gradient: {padded * C * 4 / 2**20:.1f} MiB)")


def head_step(method, N, C, V, padded, device, dtype, steps, warmup, compiled, seed):
    """In a fresh process: (median ms of a forward and backward, peak bytes, the loss). The peak is
    CUDA's peak of allocated memory; on other devices the growth of the process's peak RSS over its
    RSS just before the first step (the hidden states and the head already made): what the steps
    add, the gradients included, as the operating system counts it (so allocator slack too)."""
    setup_device(device)
    torch.manual_seed(seed)
    x = torch.randn(N, C, device=device, requires_grad=True)  # the final norm's output: unit scale
    w = torch.nn.Parameter(torch.randn(padded, C, device=device) * 0.02)  # the head, as GPT initialises it
    targets = torch.randint(0, V, (N,), device=device)

    def full():  # GPT.head, then GPT.forward's loss
        return F.cross_entropy(F.linear(x, w)[:, :V].float(), targets, ignore_index=-1)

    def fused():
        return linear_cross_entropy(x, w, targets, V, ignore_index=-1)

    loss_fn = fused if method == "fused" else torch.compile(full) if compiled else full
    ctx = autocast_context(device, dtype)
    cuda = device.startswith("cuda")
    if cuda:
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
    else:
        before = rss_bytes()
    times = []
    for i in range(warmup + steps):
        x.grad = w.grad = None  # each step makes its gradients, as a training step's first micro-step
        t0 = time.perf_counter()
        with ctx:
            loss = loss_fn()
        loss.backward()
        value = loss.item()  # waits for the device
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    peak = torch.cuda.max_memory_allocated(device) if cuda else peak_rss_bytes()
    return float(np.median(times)) * 1000, peak - before, value


def peak_rss_bytes():
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024  # bytes on macOS, KiB on Linux


def rss_bytes():
    """This process's resident memory now (Linux); elsewhere its peak so far (a step's peak shows where it passes it)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return peak_rss_bytes()


if __name__ == "__main__":
    configure(globals(), unknown_keys="skip_in_files")  # a train.py config file brings keys we do not use
    try:
        main()
    except (FileNotFoundError, ValueError) as e:
        sys.exit(f"error: {e}")
