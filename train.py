"""
Train a GPT. One process on a laptop CPU or one GPU:

    python train.py config/train_shakespeare_char_cpu.py
    python train.py config/train_shakespeare_char.py --use_rope=True

Many GPUs (DDP), on one node or several:

    torchrun --standalone --nproc_per_node=8 train.py config/train_gpt2.py
    torchrun --nnodes=2 --node_rank=0 --master_addr=10.0.0.1 --master_port=29500 \
        --nproc_per_node=8 train.py config/train_gpt2.py     # and node_rank=1 on the other

Every global in the config section is a key: set it in a config file or as --key=value
(python train.py --help lists them). The helpers below the config are importable; the
loop runs only under `if __name__ == "__main__"`.
"""

import importlib
import json
import math
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from contextlib import nullcontext
from dataclasses import fields

import numpy as np
import torch

from data.common import dataset_dir, find_meta, load_meta, open_tokens
from model import GPT, GPTConfig

# ----------------------------------------------------------------------------- config
# I/O
out_dir = "out"
eval_interval = 2000  # evaluate (and maybe checkpoint) every this many iterations, and at the end
log_interval = 1
eval_iters = 200  # batches per split in each evaluation
eval_only = False  # evaluate once and exit
always_save_checkpoint = True  # save at every evaluation, not only when val loss improves
ckpt_interval = 0  # also save every this many iterations regardless of val loss (0: off)
target_val_loss = 0.0  # stop at the first evaluation whose val loss is at most this, and save (0: off)
init_from = "scratch"  # 'scratch', 'resume' (from out_dir/ckpt.pt), or 'ckpt:PATH' (its weights only, to finetune)
# ... or OpenAI's 'gpt2', 'gpt2-medium', 'gpt2-large', 'gpt2-xl', or 'hf:PATH' (a local Hugging Face GPT-2 folder)
# wandb (works offline with WANDB_MODE=offline)
wandb_log = False
wandb_project = "gptlab"
wandb_run_name = "run"
# data
dataset = "shakespeare_char"  # a prepared folder under data/
data_dir = ""  # or any folder holding train.bin, val.bin, meta.json (overrides dataset)
gradient_accumulation_steps = 5 * 8  # micro-steps per optimizer step, summed over all ranks
batch_size = 12  # sequences per micro-step per rank
length_bands = 1  # datasets of whole examples (a batch_module): each batch takes examples of like length from one of this many bands (less padding, same odds per example)
# model: every field of model.GPTConfig is also a key (the defaults are GPT-2 124M)
globals().update({f.name: f.default for f in fields(GPTConfig)})
vocab_size = None  # None: from the dataset's meta.json
pad_vocab = True  # new runs round the vocabulary up to a multiple of 64 (the model's default, False, is GPT-2 exactly)
# optimizer
optimizer = "adamw"  # 'adamw'; 'adafactor' (less memory); 'muon' (Muon for the blocks' matrices, AdamW for the rest)
learning_rate = 6e-4  # peak learning rate; 'auto': Kaplan et al.'s scaling law from the model's size (scaling_law_lr)
muon_lr = 0.02  # with optimizer='muon': the matrices' peak rate (Keller Jordan's); the schedule scales it like learning_rate
max_iters = 600000
weight_decay = 1e-1
beta1 = 0.9  # AdamW's
beta2 = 0.95
grad_clip = 1.0  # clip the global gradient norm to this (0: off)
# learning-rate schedule: linear warmup, then cosine decay to min_lr
use_warmup = True  # linear warmup over warmup_iters; False starts at the full rate
warmup_iters = 2000
use_cosine = True  # cosine decay to min_lr by lr_decay_iters; False keeps the peak rate
decay_lr = True  # nanoGPT's name: False turns the whole schedule off (constant learning_rate)
lr_decay_iters = 600000  # usually max_iters
min_lr = 6e-5  # usually learning_rate / 10 (Chinchilla)
# system
backend = "auto"  # DDP backend: 'auto' is nccl on CUDA, gloo on CPU
device = "auto"  # 'auto' (cuda, then mps, then cpu), 'cpu', 'cuda', 'cuda:1', 'mps'
dtype = "auto"  # 'auto' (bf16 where supported, else fp16 on CUDA; fp32 on CPU), 'float32', 'bfloat16', 'float16'
compile = False  # torch.compile the model (PyTorch 2); slow to start, faster after
peak_flops = 0.0  # device peak FLOP/s for MFU; 0 looks up known GPUs, else MFU is not shown
seed = 1337
skip_nonfinite = 0  # skip up to this many steps with a NaN/inf loss before stopping (0: stop at the first)
keep_last = 0  # besides ckpt.pt, keep this many earlier checkpoints as ckpt-<iter>.pt (0: none)
# ------------------------------------------------------------------------------
CONFIG_KEYS = [k for k, v in globals().items() if not k.startswith("_") and isinstance(v, (int, float, bool, str, tuple, type(None)))]
AUTO_KEYS = ["learning_rate"]  # keys that also take the word 'auto' (a list, so not a key itself)


# ------------------------------------------------------------------------ helpers

def resolve_device(device):
    if device != "auto":
        return device
    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def resolve_dtype(dtype, device):
    if dtype != "auto":
        return dtype
    if device.startswith("cuda"):
        return "bfloat16" if torch.cuda.is_bf16_supported() else "float16"
    return "float32"  # CPU bf16 autocast helps only where the CPU has bf16 units; ask for it


def cpu_has_bf16():
    """True where the CPU multiplies bf16 in hardware (AMX or AVX512-BF16: Intel Sapphire Rapids and
    later, AMD Zen 4 and later). Elsewhere torch emulates bf16 and autocast is far slower than fp32:
    the birthplace model's step took ~100 s in bf16 against ~2 s in fp32 on an AVX2-only AMD EPYC.
    Config files may use it: dtype = "bfloat16" if cpu_has_bf16() else "float32"."""
    probes = ("_is_amx_tile_supported", "_is_avx512_bf16_supported")  # torch.cpu's, private but long-lived
    return any(getattr(torch.cpu, name, lambda: False)() for name in probes)


def bf16_warning(dtype, optimizer, has_bf16):
    """The line to print on a CPU without bf16 units when the run would use bf16 anyway (or None)."""
    if has_bf16:
        return None
    if dtype == "bfloat16":
        return ("warning: this CPU has no bf16 units (AMX or AVX512-BF16), so torch emulates bf16 autocast, "
                "many times slower than fp32; use --dtype=float32")
    if optimizer == "muon":
        return ("warning: this CPU has no bf16 units (AMX or AVX512-BF16), and torch's Muon orthogonalises in "
                "bf16: emulated, that can cost more than the rest of the step; --optimizer=adamw may be faster")
    return None


def autocast_context(device, dtype):
    """Mixed precision for the forward pass; a no-op in fp32."""
    if dtype == "float32":
        return nullcontext()
    ptdtype = {"bfloat16": torch.bfloat16, "float16": torch.float16}[dtype]
    return torch.autocast(device_type=device.split(":")[0], dtype=ptdtype)


# known dense bf16 peaks (FLOP/s); anything else: pass --peak_flops
PEAK_FLOPS = {"A100": 312e12, "H100": 989e12, "H200": 989e12, "A10": 125e12, "L4": 121e12,
              "4090": 165e12, "3090": 71e12, "V100": 125e12, "T4": 65e12}


def lookup_peak_flops(device):
    if not device.startswith("cuda"):
        return 0.0
    name = torch.cuda.get_device_name(device)
    return next((v for k, v in PEAK_FLOPS.items() if k in name), 0.0)


def scaling_law_lr(n_params):
    """The learning rate Kaplan et al. (2020, appendix D.6) fit to their best runs, from N, the
    parameters outside the embeddings (model.num_body_params()). It is for Adam, at their batch size."""
    return 0.003239 - 0.0001395 * math.log(n_params)


def get_lr(it, learning_rate, min_lr, warmup_iters, lr_decay_iters, use_warmup=True, use_cosine=True):
    """Learning rate at iteration it: linear warmup, learning_rate*(it+1)/(warmup_iters+1) (never
    0), then cosine down to min_lr at lr_decay_iters, then flat."""
    if use_warmup and it < warmup_iters:
        return learning_rate * (it + 1) / (warmup_iters + 1)
    if not use_cosine:
        return learning_rate
    if it >= lr_decay_iters:
        return min_lr
    start = warmup_iters if use_warmup else 0
    ratio = (it - start) / max(1, lr_decay_iters - start)  # 0 -> 1
    coeff = 0.5 * (1.0 + math.cos(math.pi * ratio))  # 1 -> 0
    return min_lr + coeff * (learning_rate - min_lr)


def draw_batch_starts(rng, n_tokens, block_size, n_rows, batch_size):
    """(n_rows, batch_size) random window starts. Every rank draws the same array from the
    same generator and takes its own rows, so 2 ranks with k micro-steps read exactly what
    1 rank with 2k micro-steps reads."""
    if n_tokens <= block_size:
        raise ValueError(f"the split holds {n_tokens} tokens, not more than block_size={block_size}; "
                         f"lower --block_size or prepare more data")
    return rng.integers(0, n_tokens - block_size, size=(n_rows, batch_size))


def get_batch(data, starts, block_size, device):
    """data: 1-D token ids (memmap); starts: (B,) -> x, y (B, T) int64, y is x shifted by one."""
    x = torch.from_numpy(np.stack([data[i:i + block_size].astype(np.int64) for i in starts]))
    y = torch.from_numpy(np.stack([data[i + 1:i + 1 + block_size].astype(np.int64) for i in starts]))
    if device.startswith("cuda"):  # pinned memory lets the copy overlap with compute
        return x.pin_memory().to(device, non_blocking=True), y.pin_memory().to(device, non_blocking=True)
    return x.to(device), y.to(device)


def trim_ignored(x, y, ignore_index=-1):
    """x, y (B, T) -> (B, T') without the trailing columns whose targets are all ignored
    (padding). Exact: attention is causal, so earlier positions never see the cut ones,
    and ignored targets add nothing to the loss."""
    used = np.flatnonzero((y != ignore_index).any(axis=0))
    t = int(used[-1]) + 1 if len(used) else 1
    return x[:, :t], y[:, :t]


class TokenWindows:
    """The default batches: random block_size windows of a split's token stream."""

    def __init__(self, tokens, block_size, device):
        self.tokens, self.block_size, self.device = tokens, block_size, device

    def __len__(self):
        return len(self.tokens)

    def draw(self, rng, n_rows, batch_size):
        return draw_batch_starts(rng, len(self.tokens), self.block_size, n_rows, batch_size)

    def get(self, starts):
        return get_batch(self.tokens, starts, self.block_size, self.device)


class Examples:
    """Batches of whole examples built by the dataset's own module (meta.json "batch_module";
    span corruption, for one, must corrupt afresh at every draw): source.examples(seeds) gives
    one (x, y) pair per seed. Every example gets a seed
    from the run's batch generator, so a resume repeats them and DDP ranks take distinct rows."""

    def __init__(self, source, n_tokens, device):
        self.source, self.n_tokens, self.device = source, n_tokens, device

    def __len__(self):
        return self.n_tokens

    def draw(self, rng, n_rows, batch_size):
        return rng.integers(0, 2**63 - 1, size=(n_rows, batch_size))

    def get(self, seeds):
        x, y = zip(*self.source.examples(seeds))
        x, y = trim_ignored(np.stack(x), np.stack(y))  # (B, T) each, T <= block_size
        x, y = torch.from_numpy(np.ascontiguousarray(x)), torch.from_numpy(np.ascontiguousarray(y))
        return x.to(self.device), y.to(self.device)


def open_batches(data_dir, split, meta, block_size, device, length_bands=1):
    """The batch source of one split, chosen once: draw(rng, n_rows, batch_size) -> rows,
    get(row) -> X, Y. Raises ValueError when the split cannot fill a block."""
    tokens = open_tokens(data_dir, split, meta)
    if "batch_module" in meta:
        module = importlib.import_module(meta["batch_module"])
        return Examples(module.load_split(data_dir, split, meta, block_size, length_bands), len(tokens),
                        device)
    if len(tokens) <= block_size:
        raise ValueError(f"the {split} split of {data_dir} has {len(tokens)} tokens, not more than "
                         f"block_size={block_size}; lower --block_size")
    return TokenWindows(tokens, block_size, device)


def optimizer_step(optimizers, scaler, model, grad_clip):
    """Clip the global gradient norm to grad_clip (0: no clipping), step every optimizer (a
    GradScaler skips the step when fp16 gradients overflowed), then clear the gradients."""
    if grad_clip != 0.0:
        for opt in optimizers:
            scaler.unscale_(opt)  # clip the true gradients, not the loss-scaled ones
        torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    for opt in optimizers:
        scaler.step(opt)
    scaler.update()
    for opt in optimizers:
        opt.zero_grad(set_to_none=True)


@torch.no_grad()
def estimate_loss(model, splits, eval_iters, batch_size, ctx, seed=0):
    """Mean loss per split (name -> batch source) over eval_iters batches. The batches are the
    same at every call (fixed seed), so evaluations along a run, and across runs, compare like
    with like."""
    out = {}
    model.eval()
    for split, batches in splits.items():
        rows = batches.draw(np.random.default_rng(seed), eval_iters, batch_size)
        losses = torch.zeros(eval_iters)
        for k in range(eval_iters):
            X, Y = batches.get(rows[k])
            with ctx:
                _, loss = model(X, Y)
            losses[k] = loss.item()
        out[split] = losses.mean().item()
    model.train()
    return out


def rng_state():
    """Every random state that drives a run, to make a resume continue it exactly."""
    name, keys, pos, has_gauss, gauss = np.random.get_state()  # numpy arrays do not pass weights_only
    state = {"python": random.getstate(), "numpy": (name, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, gauss),
             "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state):
    random.setstate(state["python"])
    name, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(ckpt, path, keep_last=0):
    """Write atomically: a temp file in the same folder, flushed to disk, then renamed over
    the old one. A crash at any moment leaves either the old or the new checkpoint whole.
    With keep_last > 0 the newest keep_last saves also stay as ckpt-<iter>.pt beside it."""
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        torch.save(ckpt, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    if keep_last > 0:
        folder = os.path.dirname(path) or "."
        kept = os.path.join(folder, f"ckpt-{ckpt['iter_num']:08d}.pt")
        if os.path.exists(kept):
            os.remove(kept)
        try:
            os.link(path, kept)  # a second name for the same bytes: no copy
        except OSError:
            shutil.copyfile(path, kept)  # filesystems without hard links
        old = sorted(f for f in os.listdir(folder) if f.startswith("ckpt-") and f.endswith(".pt"))
        for f in old[:-keep_last]:
            os.remove(os.path.join(folder, f))


def load_checkpoint(path, device="cpu"):
    """torch.load with weights_only=True (no arbitrary unpickling), and a one-line error
    that names the file when it is missing, truncated or not a checkpoint."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no checkpoint at {path}; train one first (python train.py ...) or fix --out_dir")
    try:
        ckpt = torch.load(path, map_location=device, weights_only=True)
    except Exception as e:
        first = (str(e).splitlines() or [""])[0].split(". ")[0]  # torch's first sentence; the rest is advice
        why = f"{type(e).__name__}: {first}" if first else type(e).__name__
        raise RuntimeError(f"cannot read checkpoint {path} ({why}); "
                           f"the file is damaged or not a checkpoint (a .tmp beside it is an unfinished save)")
    if not isinstance(ckpt, dict) or "model" not in ckpt or "model_args" not in ckpt:
        raise RuntimeError(f"{path} is not a gptlab/nanoGPT checkpoint (no 'model' and 'model_args' entries)")
    ckpt = upgrade_nanogpt_checkpoint(ckpt)
    if isinstance(ckpt.get("optimizer"), dict):  # from before optimizer choice: one AdamW's state
        ckpt["optimizer"] = [ckpt["optimizer"]]
    return ckpt


def model_from_checkpoint(ckpt):
    """Rebuild the GPT a checkpoint was saved from, with its weights. A flag newer than the
    checkpoint takes GPTConfig's default, which is what every model was before the flag."""
    known = {f.name for f in fields(GPTConfig)}
    model = GPT(GPTConfig(**{k: v for k, v in ckpt["model_args"].items() if k in known}))
    model.load_state_dict(ckpt["model"])
    return model


def load_run(out_dir, data_dir=""):
    """(model on the CPU, tokenizer meta) of the run in out_dir: its ckpt.pt, and the meta.json
    in data_dir if given, else in out_dir or the folder of the dataset the run trained on."""
    ckpt = load_checkpoint(os.path.join(out_dir, "ckpt.pt"), "cpu")
    cfg = ckpt.get("config", {})
    folders = [data_dir] if data_dir else [out_dir, dataset_dir(cfg.get("dataset", ""), cfg.get("data_dir", ""))]
    return model_from_checkpoint(ckpt), find_meta(folders, ckpt["model_args"]["vocab_size"])


GPT2_NAMES = ("gpt2", "gpt2-medium", "gpt2-large", "gpt2-xl")  # OpenAI's 124M, 350M, 774M, 1558M
NANOGPT_MODEL_ARGS = {"n_layer", "n_head", "n_embd", "block_size", "bias", "vocab_size", "dropout"}


def load_pretrained(init_from, dropout=0.0, block_size=None):
    """OpenAI's GPT-2 (init_from in GPT2_NAMES: the Hugging Face Hub, or its local cache)
    or a local Hugging Face GPT-2 folder ('hf:PATH'), as (model_args, state_dict) for our GPT.
    dropout is the caller's (0 to evaluate, 0.1 to finetune); a block_size below the
    checkpoint's keeps the first block_size rows of the position table."""
    import socket
    from urllib.parse import urlparse

    from transformers import GPT2LMHeadModel  # imported here: only these callers need transformers
    from model import gpt2_config_from_hf, gpt2_state_dict_from_hf

    if init_from.startswith("hf:"):
        path = init_from[3:]
        if not os.path.isfile(os.path.join(path, "config.json")):
            raise FileNotFoundError(f"--init_from={init_from}: {path} is not a Hugging Face model folder (no config.json)")
        with open(os.path.join(path, "config.json")) as f:
            model_type = json.load(f).get("model_type")
        if model_type != "gpt2":
            raise ValueError(f"--init_from={init_from} holds a {model_type!r} model; gptlab reads GPT-2 ('gpt2') folders")
        hf = GPT2LMHeadModel.from_pretrained(path, local_files_only=True, dtype=torch.float32)
    elif init_from in GPT2_NAMES:
        hint = (f"without a network, download it where there is one (hf download {init_from}), "
                f"copy the folder here and use --init_from=hf:PATH")
        try:  # the local cache first: no network, no retries
            hf = GPT2LMHeadModel.from_pretrained(init_from, local_files_only=True, dtype=torch.float32)
        except OSError:
            host = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co")).hostname
            try:  # fail in a moment, not after a minute of retries, when the Hub is out of reach
                if os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", ""):
                    raise OSError("HF_HUB_OFFLINE is set")
                socket.create_connection((host, 443), timeout=5).close()
                hf = GPT2LMHeadModel.from_pretrained(init_from, dtype=torch.float32)
            except OSError as e:
                raise OSError(f"cannot load {init_from!r}: it is not in the Hugging Face cache and {host} is "
                              f"out of reach ({str(e).splitlines()[0]}); {hint}") from None
    else:
        raise ValueError(f"unknown --init_from={init_from!r}; use 'scratch', 'resume', "
                         f"{', '.join(repr(n) for n in GPT2_NAMES)} or 'hf:PATH'")
    args = gpt2_config_from_hf(hf.config.to_dict())
    sd = gpt2_state_dict_from_hf(hf.state_dict())
    if block_size and block_size != args["block_size"]:
        if block_size > args["block_size"]:
            raise ValueError(f"{init_from} has learned {args['block_size']} positions; "
                             f"--block_size={block_size} must be at most that")
        args["block_size"] = block_size
        sd["transformer.wpe.weight"] = sd["transformer.wpe.weight"][:block_size]  # crop the position table
    model_args = {f.name: f.default for f in fields(GPTConfig)}
    model_args.update(args, dropout=dropout)
    return model_args, sd


def upgrade_nanogpt_checkpoint(ckpt):
    """A checkpoint written by nanoGPT, made to load as ours (changed in place, returned).
    nanoGPT's model_args hold exactly NANOGPT_MODEL_ARGS: our newer flags take their defaults,
    which are GPT-2's, as in nanoGPT. Its compiled runs prefix weight names with '_orig_mod.';
    old runs saved the causal mask as attn.bias; best_val_loss may be a 0-d tensor. And its
    optimizer lists the position table right after the token embedding, where our GPT
    registers it after the blocks, so the optimizer state is renumbered by parameter name."""
    if set(ckpt["model_args"]) != NANOGPT_MODEL_ARGS:
        return ckpt  # ours
    sd = {k.removeprefix("_orig_mod."): v for k, v in ckpt["model"].items()}
    ckpt["model"] = {k: v for k, v in sd.items() if not k.endswith(".attn.bias")}
    ckpt["model_args"] = {**{f.name: f.default for f in fields(GPTConfig)}, **ckpt["model_args"]}
    ckpt["best_val_loss"] = float(ckpt.get("best_val_loss", float("inf")))
    if "optimizer" in ckpt:
        with torch.device("meta"):  # only the parameter names and their order; no memory
            ours = [n for n, _ in GPT(GPTConfig(**ckpt["model_args"])).named_parameters()]
        if sorted(ckpt["model"]) != sorted(ours + ["lm_head.weight"]):  # nanoGPT ties lm_head to wte
            raise RuntimeError("this nanoGPT checkpoint's weights do not match gptlab's GPT of the same "
                               "model_args; was nanoGPT's model.py changed?")
        # nanoGPT's order: wte, wpe, the blocks, ln_f. Ours: wte, the blocks, ln_f, wpe.
        theirs = ["transformer.wte.weight", "transformer.wpe.weight"] + \
            [n for n in ours if n not in ("transformer.wte.weight", "transformer.wpe.weight")]

        def grouped(names):  # the optimizer's flat numbering: decayed matrices first, then the rest
            return [n for n in names if ckpt["model"][n].dim() >= 2] + [n for n in names if ckpt["model"][n].dim() < 2]

        new_index = {n: i for i, n in enumerate(grouped(ours))}
        old = grouped(theirs)
        opt = ckpt["optimizer"]
        opt["state"] = {new_index[old[i]]: s for i, s in opt["state"].items()}
        n_decay = sum(ckpt["model"][n].dim() >= 2 for n in ours)
        opt["param_groups"][0]["params"] = list(range(n_decay))
        opt["param_groups"][1]["params"] = list(range(n_decay, len(ours)))
    return ckpt


def run_info():
    """Versions and the git commit, recorded beside every run."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                                cwd=os.path.dirname(os.path.abspath(__file__)), timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    return {"git_commit": commit or None, "torch": torch.__version__, "cuda": torch.version.cuda,
            "numpy": np.__version__, "python": sys.version.split()[0], "argv": sys.argv}


# --------------------------------------------------------------------------- main
if __name__ == "__main__":
    from configurator import configure

    chosen = configure(globals())
    resume_ckpt = None
    if init_from == "resume":  # the run's own settings are the defaults; what is given again wins
        try:
            resume_ckpt = load_checkpoint(os.path.join(out_dir, "ckpt.pt"), "cpu")
        except (FileNotFoundError, RuntimeError) as e:
            sys.exit(f"error: {e}")
        for k, v in resume_ckpt.get("config", {}).items():
            if k in CONFIG_KEYS and k not in chosen and k not in ("init_from", "out_dir"):
                globals()[k] = v
        saved = resume_ckpt.get("config", {}).get("optimizer", "adamw")  # runs from before the key used AdamW
        if optimizer != saved:
            sys.exit(f"error: cannot resume with --optimizer={optimizer}: the checkpoint holds {saved}'s state; "
                     f"drop --optimizer or start a new --out_dir")
    if optimizer == "muon" and learning_rate != "auto" and learning_rate <= 0:
        sys.exit("error: with --optimizer=muon the schedule scales muon_lr by lr/learning_rate; "
                 "set --learning_rate above 0")
    config = {k: globals()[k] for k in CONFIG_KEYS}

    # ---- processes and devices
    ddp = int(os.environ.get("RANK", -1)) != -1  # launched by torchrun?
    device = resolve_device(device)
    if ddp:
        import torch.distributed as dist
        from torch.nn.parallel import DistributedDataParallel as DDP

        rank, local_rank, world_size = int(os.environ["RANK"]), int(os.environ["LOCAL_RANK"]), int(os.environ["WORLD_SIZE"])
        if device.startswith("cuda"):
            device = f"cuda:{local_rank}"
            torch.cuda.set_device(device)
        dist.init_process_group(backend=("nccl" if device.startswith("cuda") else "gloo") if backend == "auto" else backend)
        if gradient_accumulation_steps % world_size:
            sys.exit(f"error: gradient_accumulation_steps={gradient_accumulation_steps} is not divisible by "
                     f"the {world_size} processes; make it a multiple of {world_size}")
    else:
        rank, local_rank, world_size = 0, 0, 1
    master = rank == 0  # only rank 0 logs and writes checkpoints
    accum = gradient_accumulation_steps // world_size  # micro-steps per rank
    tokens_per_iter = gradient_accumulation_steps * batch_size * block_size
    device_type = device.split(":")[0]
    dtype = resolve_dtype(dtype, device)
    if dtype == "bfloat16" and device_type == "cuda" and not torch.cuda.is_bf16_supported():
        sys.exit("error: this GPU has no bfloat16; use --dtype=float16")
    if device_type == "cpu" and master and (warning := bf16_warning(dtype, optimizer, cpu_has_bf16())):
        print(warning, file=sys.stderr)
    ctx = autocast_context(device, dtype)
    # fp16 gradients underflow without loss scaling; bf16 and fp32 need none
    scaler = torch.amp.GradScaler(device_type, enabled=(dtype == "float16"))
    if device_type == "cpu":
        torch.set_flush_denormal(True)  # denormal floats slowed fp32 steps here up to 1.6x
    torch.manual_seed(seed + rank)  # dropout differs per rank; the batch generator below does not
    random.seed(seed + rank)
    np.random.seed(seed + rank)
    batch_rng = np.random.default_rng(seed)  # same on every rank: ranks take different rows
    if device_type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True

    # ---- data
    ddir = dataset_dir(dataset, data_dir)
    try:
        meta = load_meta(ddir)
    except FileNotFoundError as e:
        sys.exit(f"error: {e}")
    try:  # train and val batch sources, chosen once; the loop and estimate_loss only call draw and get
        splits = {s: open_batches(ddir, s, meta, block_size, device, length_bands) for s in ("train", "val")}
    except ValueError as e:
        sys.exit(f"error: {e}")

    # ---- model
    model_args = {f.name: globals()[f.name] for f in fields(GPTConfig)}
    iter_num, best_val_loss, ckpt = 0, float("inf"), None
    elapsed = 0.0  # seconds of training before this process (a resumed run goes on counting)
    ckpt_path = os.path.join(out_dir, "ckpt.pt")
    if init_from == "scratch":
        model_args["vocab_size"] = vocab_size or meta["vocab_size"]
        if model_args["vocab_size"] < meta["vocab_size"]:
            sys.exit(f"error: --vocab_size={vocab_size} is smaller than the dataset's {meta['vocab_size']}")
    elif init_from == "resume" or init_from.startswith("ckpt:"):  # ckpt:PATH: another run's weights, to finetune
        ckpt = resume_ckpt
        if init_from != "resume":
            path = init_from[len("ckpt:"):]
            try:
                ckpt = load_checkpoint(os.path.join(path, "ckpt.pt") if os.path.isdir(path) else path, device)
            except (FileNotFoundError, RuntimeError) as e:
                sys.exit(f"error: {e}")
        # a flag newer than the checkpoint takes GPTConfig's default: the model as it was saved
        saved_args = {**{f.name: f.default for f in fields(GPTConfig)}, **ckpt["model_args"]}
        clash = [f"{k}={chosen[k]!r} (checkpoint: {v!r})" for k, v in saved_args.items()
                 if k in chosen and k != "dropout" and chosen[k] != v]
        if clash:
            sys.exit(f"error: cannot {'resume' if init_from == 'resume' else 'finetune'} with a different model: {', '.join(clash)}; drop these "
                     f"overrides or start a new --out_dir")
        model_args.update(saved_args)
        model_args["dropout"] = dropout
        if init_from == "resume":
            iter_num, best_val_loss, elapsed = ckpt["iter_num"], ckpt["best_val_loss"], ckpt.get("elapsed_s", 0.0)
        else:
            ckpt = {"model": ckpt["model"]}  # weights only: a fresh optimizer, iteration count and random states
    elif init_from in GPT2_NAMES or init_from.startswith("hf:"):  # OpenAI's GPT-2 or a local Hugging Face GPT-2
        fixed = [f"--{k}" for k in chosen if k in model_args and k not in ("dropout", "block_size", "attn_impl")]
        if fixed:
            sys.exit(f"error: --init_from={init_from} brings its own architecture; drop {', '.join(fixed)}")
        tok = meta["tokenizer"]
        if init_from in GPT2_NAMES and (tok.get("kind"), tok.get("name")) not in (("tiktoken", "gpt2"),
                                                                                  ("tiktoken", "r50k_base")):
            sys.exit(f"error: {init_from} reads GPT-2 BPE tokens but {ddir} holds {tok.get('kind')} tokens; "
                     f"use a GPT-2-tokenized dataset, e.g. --dataset=shakespeare (python data/shakespeare/prepare.py)")
        try:
            model_args, weights = load_pretrained(init_from, dropout, block_size)
        except (OSError, ValueError) as e:
            sys.exit(f"error: {e}")
        model_args["attn_impl"] = attn_impl
        if meta["vocab_size"] > model_args["vocab_size"]:
            sys.exit(f"error: {ddir} has {meta['vocab_size']} token ids but {init_from} knows "
                     f"{model_args['vocab_size']}; prepare the data with the model's tokenizer")
        ckpt = {"model": weights}  # weights only, as for ckpt:PATH
    else:
        sys.exit(f"error: unknown --init_from={init_from!r}; use 'scratch', 'resume', 'ckpt:PATH', "
                 f"{', '.join(repr(n) for n in GPT2_NAMES)} or 'hf:PATH'")
    try:
        gptconf = GPTConfig(**model_args)
    except ValueError as e:
        sys.exit(f"error: {e}")
    model = GPT(gptconf)
    if ckpt is not None:
        model.load_state_dict(ckpt["model"])
    model.to(device)
    if learning_rate == "auto":  # resolved once; config.json and the checkpoint keep the number
        learning_rate = config["learning_rate"] = scaling_law_lr(model.num_body_params())
        if master:
            print(f"learning_rate=auto: {learning_rate:.3e} for N = {model.num_body_params():,} non-embedding "
                  f"parameters (Kaplan et al. 2020)")
    try:
        optimizers = model.configure_optimizers(weight_decay, learning_rate, (beta1, beta2), device_type,
                                                optimizer, muon_lr)  # a list: Muon comes with an AdamW
    except ValueError as e:
        sys.exit(f"error: {e}")
    if init_from == "resume":
        for opt, state in zip(optimizers, ckpt["optimizer"], strict=True):
            opt.load_state_dict(state)
        if "scaler" in ckpt:
            scaler.load_state_dict(ckpt["scaler"])
        if "rng" in ckpt:
            set_rng_state(ckpt["rng"][rank] if rank < len(ckpt["rng"]) else ckpt["rng"][0])
            batch_rng.bit_generator.state = ckpt["batch_rng"]
    ckpt = resume_ckpt = None  # free memory
    raw_model = model  # checkpoints always hold the plain module's weights
    if compile:
        if master:
            print("compiling the model... (takes a while)")
        model = torch.compile(model)
    if ddp:
        model = DDP(model, device_ids=[local_rank] if device_type == "cuda" else None)
    peak = peak_flops or lookup_peak_flops(device)

    if master:
        os.makedirs(out_dir, exist_ok=True)
        with open(os.path.join(out_dir, "config.json"), "w") as f:
            json.dump({"config": config, "model_args": model_args, "run": run_info(),
                       "world_size": world_size, "device": device, "dtype": dtype}, f, indent=1)
        print(f"data: {ddir} ({len(splits['train']):,} train / {len(splits['val']):,} val tokens, "
              f"vocab {meta['vocab_size']})")
        print(f"model: {raw_model.num_params() / 1e6:.2f}M parameters; device {device}, {dtype}, "
              f"{world_size} process(es); {tokens_per_iter:,} tokens per iteration; {optimizer}")
        if wandb_log:
            import wandb
            try:
                wandb.init(project=wandb_project, name=wandb_run_name, config=config)
            except Exception as e:  # no API key, no network: say what to do instead of a traceback
                sys.exit(f"error: wandb could not start ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}); "
                         f"run `wandb login`, set WANDB_MODE=offline, or pass --wandb_log=False")
    log_file = open(os.path.join(out_dir, "log.jsonl"), "a") if master else None

    def log(record):
        """One JSON object per line of out_dir/log.jsonl (a NaN or inf is written as null)."""
        record = {k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in record.items()}
        log_file.write(json.dumps(record) + "\n")
        log_file.flush()
        if wandb_log:
            wandb.log({k: v for k, v in record.items() if v is not None}, step=record["iter"])

    def checkpoint(reason):
        states = gather_rng()  # collective under DDP: every rank takes part
        if not master:
            return
        if not all(torch.isfinite(p).all() for p in raw_model.parameters()):
            print(f"warning: not saving at iter {iter_num}: the weights hold NaN/inf; {ckpt_path} keeps the last "
                  f"good state", file=sys.stderr)
            return
        save_checkpoint({
            "model": raw_model.state_dict(), "optimizer": [opt.state_dict() for opt in optimizers],
            "scaler": scaler.state_dict(), "model_args": model_args, "iter_num": iter_num,
            "best_val_loss": best_val_loss, "config": config, "rng": states,
            "batch_rng": batch_rng.bit_generator.state, "elapsed_s": time.time() - t_start,
        }, ckpt_path, keep_last)
        print(f"saved checkpoint to {ckpt_path} at iter {iter_num} ({reason})")

    def gather_rng():
        if not ddp:
            return [rng_state()]
        states = [None] * world_size
        dist.all_gather_object(states, rng_state())
        return states

    # ---- stop cleanly on SIGINT / SIGTERM: finish the step, save, exit; a second signal exits at once
    stop_signal = []

    def on_signal(signum, frame):
        if stop_signal:
            print("second signal: exiting now without saving", file=sys.stderr)
            os._exit(130)
        stop_signal.append(signum)
        if master:
            print(f"\n{signal.Signals(signum).name}: finishing this step, then saving and exiting "
                  f"(send again to exit at once)", file=sys.stderr)

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)

    def stop_signal_everywhere(stopping):
        """Under DDP every rank must stop at the same step: true if any rank got a signal."""
        flag = torch.tensor([float(stopping)], device=device)
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        return flag.item() > 0

    def lr_at(it):
        if not decay_lr:
            return learning_rate
        return get_lr(it, learning_rate, min_lr, warmup_iters, lr_decay_iters, use_warmup, use_cosine)

    # ---- the loop
    raw_model.train()
    loss_sum = torch.zeros((), device=device)  # this step's loss, summed over micro-steps
    nonfinite_steps = 0
    reached = False  # target_val_loss
    t_start = time.time() - elapsed  # the run's clock: the log's elapsed_s, going on across resumes
    t0 = time.time()
    while True:
        lr = lr_at(iter_num)
        for opt in optimizers:  # Muon's peak rate is muon_lr: the schedule scales it as it scales learning_rate
            for group in opt.param_groups:
                group["lr"] = lr * muon_lr / learning_rate if isinstance(opt, torch.optim.Muon) else lr

        # evaluate, log, checkpoint
        if iter_num % eval_interval == 0 or iter_num >= max_iters or eval_only:
            losses = estimate_loss(model, splits, eval_iters, batch_size, ctx)
            reached = target_val_loss > 0 and losses["val"] <= target_val_loss
            if master:
                print(f"step {iter_num}: train loss {losses['train']:.4f}, val loss {losses['val']:.4f}, "
                      f"val ppl {math.exp(min(losses['val'], 50)):.2f}")
                log({"iter": iter_num, "tokens": iter_num * tokens_per_iter, "val_loss": losses["val"],
                     "train_loss_eval": losses["train"], "lr": lr, "elapsed_s": time.time() - t_start})
            improved = losses["val"] < best_val_loss
            best_val_loss = min(best_val_loss, losses["val"])
            if iter_num > 0 and (improved or always_save_checkpoint or reached):
                checkpoint("val improved" if improved else "always_save_checkpoint" if always_save_checkpoint
                           else "target_val_loss")
            if reached and master:
                print(f"val loss {losses['val']:.4f} <= target_val_loss={target_val_loss} at iter {iter_num}: stopping")
            t0 = time.time()  # the next step's ms/iter leaves the evaluation out
        if iter_num >= max_iters or eval_only or reached:
            break

        # one optimizer step: accum micro-steps per rank, gradients averaged over ranks by DDP
        rows = splits["train"].draw(batch_rng, world_size * accum, batch_size)
        for micro in range(accum):
            X, Y = splits["train"].get(rows[rank * accum + micro])
            if ddp:  # all-reduce the gradients only on the last micro-step
                model.require_backward_grad_sync = micro == accum - 1
            with ctx:
                _, loss = model(X, Y)
                loss = loss / accum  # the gradient of the mean over micro-steps
            scaler.scale(loss).backward()
            loss_sum += loss.detach().float()
        if ddp:  # the mean over ranks: what we log, and every rank sees the same non-finite verdict
            dist.all_reduce(loss_sum, op=dist.ReduceOp.AVG)
        lossf = loss_sum.item()  # a sync point; cheap next to a step
        loss_sum.zero_()
        if not math.isfinite(lossf):
            for opt in optimizers:  # drop this step's gradients; the weights are still good
                opt.zero_grad(set_to_none=True)
            nonfinite_steps += 1
            if nonfinite_steps > skip_nonfinite:
                if master:
                    print(f"error: loss is {lossf} at iter {iter_num}; stopping without saving (the last checkpoint "
                          f"is untouched). Lower --learning_rate, or --skip_nonfinite=N to skip N bad steps", file=sys.stderr)
                sys.exit(1)
            if master:
                print(f"warning: loss is {lossf} at iter {iter_num}; skipped the step "
                      f"({nonfinite_steps} of --skip_nonfinite={skip_nonfinite})", file=sys.stderr)
            iter_num += 1
            continue
        optimizer_step(optimizers, scaler, model, grad_clip)
        t1 = time.time()
        dt, t0 = t1 - t0, t1
        iter_num += 1
        if iter_num % log_interval == 0 and master:
            mfu = raw_model.estimate_mfu(tokens_per_iter, dt, peak)
            mfu_text = f", mfu {mfu * 100:.1f}%" if mfu is not None else ""
            print(f"iter {iter_num}: loss {lossf:.4f}, lr {lr:.2e}, time {dt * 1000:.2f}ms, "
                  f"{tokens_per_iter / dt:,.0f} tok/s{mfu_text}")
            log({"iter": iter_num, "tokens": iter_num * tokens_per_iter, "train_loss": lossf, "lr": lr,
                 "dt_ms": dt * 1000, "tok_per_s": tokens_per_iter / dt, "mfu": mfu, "elapsed_s": t1 - t_start})
        if ckpt_interval and iter_num % ckpt_interval == 0:
            checkpoint("ckpt_interval")
        if ddp and stop_signal_everywhere(bool(stop_signal)):
            stop_signal.append(signal.SIGTERM)
        if stop_signal:
            checkpoint(f"{signal.Signals(stop_signal[0]).name}")
            if master:
                print(f"stopped at iter {iter_num}; continue with --init_from=resume --out_dir={out_dir}")
            break

    if master:  # the run's totals: training FLOPs (6N per token plus attention, as for MFU) and wall time.
        # Readers find evaluations by "val_loss" and steps by "train_loss", so no key here contains either.
        tokens, wall = iter_num * tokens_per_iter, time.time() - t_start
        log({"iter": iter_num, "tokens": tokens, "train_flops": raw_model.flops_per_token() * tokens,
             "wall_s": wall, "best_val": best_val_loss, "reached_target": reached})
        print(f"{iter_num} iterations, {tokens:,} tokens, {raw_model.flops_per_token() * tokens:.3e} training FLOPs, "
              f"{wall:.1f} s")
    if ddp:  # wait for rank 0's last checkpoint: a rank that tears gloo down early can abort its peer
        dist.barrier()
        dist.destroy_process_group()
