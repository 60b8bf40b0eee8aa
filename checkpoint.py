"""
What a run saves and what a run can start from.

    save_checkpoint / load_checkpoint   atomic writes (keep_last earlier ones too), weights_only reads
    model_from_checkpoint / load_model  the GPT a checkpoint (or GPT-2's weights) holds, for the other stages
    checkpoint_tokenizer                the tokenizer a checkpoint reads, from its own record, checked
    read_log / evaluation_at / clear_run  a run's log.jsonl, and deleting a run for --overwrite
    load_pretrained                     OpenAI's GPT-2 or a local Hugging Face GPT-2 folder
    upgrade_nanogpt_checkpoint          a checkpoint written by nanoGPT, made to load as ours
    start_from                          train.py's --init_from: scratch, resume, ckpt:PATH, gpt2*, hf:PATH

A checkpoint is a dict saved with torch.save and read back with weights_only=True, so loading
one never runs code: "model" (the plain module's state dict), "model_args" (GPTConfig fields),
"optimizer" (a list, one state dict per optimizer), "scaler", "iter_num", "best_val_loss",
"config" (every train.py key), "rng" (one entry per rank, with that rank's GPU generator),
"batch_rng", "elapsed_s", and "tokenizer" (data.tokenizer.tokenizer_record of the dataset it
trained on: a run is never resumed, finetuned or sampled with another tokenizer's ids, and
sample.py, evaluate.py and export.py need no dataset folder: checkpoint_tokenizer).
"""

import json
import os
import random
import shutil
import subprocess
import sys
import time
from dataclasses import fields

import numpy as np
import torch

from data.common import dataset_dir, describe_tokenizer
from data.tokenizer import GPT2_BPE, Tokenizer, find_meta, same_tokenizer, tokenizer_identity
from model import GPT, GPTConfig


def rng_state():
    """Every random state that drives a run, to make a resume continue it exactly."""
    name, keys, pos, has_gauss, gauss = np.random.get_state()  # numpy arrays do not pass weights_only
    state = {"python": random.getstate(), "numpy": (name, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, gauss),
             "torch": torch.get_rng_state()}
    if torch.cuda.is_available():  # this rank's GPU only: a resume may see fewer GPUs (set_rng_state)
        state["cuda"] = torch.cuda.get_rng_state(torch.cuda.current_device())
    return state


def set_rng_state(state):
    """Restore rng_state(). On a GPU, only the current device's generator: call torch.cuda.set_device
    first (device.setup_device does)."""
    random.setstate(state["python"])
    name, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        cuda, here = state["cuda"], torch.cuda.current_device()
        if isinstance(cuda, (list, tuple)):  # older checkpoints: every visible GPU's state, by index
            cuda = cuda[here] if here < len(cuda) else cuda[0]
        torch.cuda.set_rng_state(cuda, here)


def seed_rank(state, rank):
    """Seed every generator rng_state() covers for a rank that a checkpoint holds no state for (it
    was saved by fewer ranks): from a number drawn from state (rank 0's, say) plus the rank, so each
    such rank draws its own dropout masks, and the same ones each time it resumes this checkpoint."""
    g = torch.Generator()
    g.set_state(state["torch"])
    seed = int(torch.randint(2 ** 31, (1,), generator=g)) + rank
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # the CPU's and every GPU's


def read_log(path):
    """A run's log.jsonl -> (train records, eval records, summary records). Train and eval records are
    sorted by iter; a resumed run logs the steps after its checkpoint twice and the later record
    wins. There is a summary for each time train.py ran to its end (a resume adds one). A last line
    cut short by a crash is left out. No file: three empty lists."""
    steps, evals, summaries = {}, {}, []
    if os.path.isfile(path):
        with open(path) as f:
            for line in f:
                try:
                    r = json.loads(line)
                except ValueError:  # a line cut short by a crash
                    continue
                if "train_flops" in r:
                    summaries.append(r)
                else:
                    (evals if "val_loss" in r else steps)[r["iter"]] = r
    return [steps[i] for i in sorted(steps)], [evals[i] for i in sorted(evals)], summaries


def evaluation_at(out_dir, iter_num):
    """out_dir/log.jsonl's evaluation record at iter_num, or None. A run resumed there does not
    evaluate (and log) it again, and takes its val loss from here (a target_val_loss reached)."""
    return next((r for r in read_log(os.path.join(out_dir, "log.jsonl"))[1] if r["iter"] == iter_num), None)


RUN_FILES = ("ckpt.pt", "ckpt.pt.tmp", "ckpt_dcp", "ckpt_dcp.tmp", "log.jsonl", "config.json")


def clear_run(out_dir):
    """Delete what a train.py run wrote in out_dir (for --overwrite=True): ckpt.pt, the kept
    ckpt-<iter>.pt, the sharded ckpt_dcp folders, log.jsonl, config.json, and evaluate.py's answers
    and recall files of its checkpoints. Other files stay. Returns the names deleted."""
    if not os.path.isdir(out_dir):
        return []
    gone = []
    for name in sorted(os.listdir(out_dir)):
        path = os.path.join(out_dir, name)
        if not (name in RUN_FILES or (name.startswith("ckpt-") and name.endswith(".pt"))
                or name.startswith("ckpt_dcp-") or name.endswith((".answers.txt", ".recall.txt"))):
            continue
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        else:
            os.remove(path)
        gone.append(name)
    return gone


def kept_iter(name, prefix):
    """The iteration in a kept save's name (ckpt-00000600.pt, ckpt_dcp-00000600-1), or None."""
    digits = name[len(prefix):].split("-")[0].split(".")[0] if name.startswith(prefix) else ""
    return int(digits) if digits.isdigit() else None


def save_checkpoint(ckpt, path, keep_last=0):
    """Write atomically: a temp file in the same folder, flushed to disk, then renamed over
    the old one. A crash at any moment leaves either the old or the new checkpoint whole.
    A failed write (a full disk) removes the temp file and raises OSError with one line that
    says how much space the checkpoint needs. With keep_last > 0 the newest keep_last saves also
    stay as ckpt-<iter>.pt beside it."""
    tmp = path + ".tmp"
    try:
        with open(tmp, "wb") as f:
            torch.save(ckpt, f)
            f.flush()
            os.fsync(f.fileno())
    except OSError as e:  # a full disk, a quota, a vanished mount: the old checkpoint is untouched
        if os.path.exists(tmp):
            os.remove(tmp)
        raise OSError(write_failure(path, e, tensor_bytes(ckpt))) from None
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
        # by iteration, and only this run's: a file of a later iteration than this save is not from its past
        old = sorted((it, f) for f in os.listdir(folder) if f.endswith(".pt")
                     and (it := kept_iter(f, "ckpt-")) is not None and it <= ckpt["iter_num"])
        for _, f in old[:-keep_last]:
            os.remove(os.path.join(folder, f))


def tensor_bytes(obj):
    """Bytes of every tensor in a (nested) checkpoint dict: about what its file needs on disk (for a
    sharded state, what all the ranks' files need together: a DTensor counts its whole size)."""
    if torch.is_tensor(obj):
        return obj.numel() * obj.element_size()
    if isinstance(obj, dict):
        return sum(tensor_bytes(v) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return sum(tensor_bytes(v) for v in obj)
    return 0


def write_failure(path, error, needed):
    """The one line for a checkpoint (a file, or a sharded save's folder) that could not be written:
    why, how much it needs, how much is free, and that the previous save is still whole."""
    def size(n):
        return f"{n / 1e9:.2f} GB" if n >= 1e9 else f"{n / 1e6:.1f} MB"

    try:
        free = f"{size(shutil.disk_usage(os.path.dirname(os.path.abspath(path))).free)} is free there"
    except OSError:
        free = "the free space there is unknown"
    why = (error.strerror if isinstance(error, OSError) else None) or str(error).splitlines()[0]
    return (f"could not write the checkpoint {path} ({why}): it needs about {size(needed)} and {free}; "
            f"the previous save is untouched")


def load_checkpoint(path):
    """torch.load with weights_only=True (no arbitrary unpickling), and a one-line error
    that names the file when it is missing, truncated or not a checkpoint. Everything lands in
    host memory, whatever device saved it: the caller moves the weights (model.to(device)), and
    optimizer.load_state_dict moves the moments to their parameters' device, so a GPU never holds
    two copies or a state nobody uses."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no checkpoint at {path}; train one first (python train.py ...) or fix --out_dir")
    try:
        # mmap: tensors are read from the file when used, and the ranks of one node share its pages
        # (copy-on-write, so training never writes into the file)
        ckpt = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
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


def check_tokenizer(saved, model_vocab, meta, data_dir, source):
    """Raise ValueError, one line naming both, unless the dataset in data_dir (meta: its meta.json)
    uses the tokenizer that the checkpoint at source was trained with. saved: the checkpoint's
    "tokenizer" record; a checkpoint from before the record has none, and then only the size of
    the vocabulary can be checked (model_vocab: the model's)."""
    if saved:
        now = tokenizer_identity(meta, data_dir)
        if not same_tokenizer(saved, now):
            raise ValueError(f"{source} was trained on {describe_tokenizer(saved)} but {data_dir} holds "
                             f"{describe_tokenizer(now)}; a model reads only its own tokenizer's ids: use a "
                             f"dataset prepared with the same tokenizer, or train from scratch")
    elif meta["vocab_size"] > model_vocab:
        raise ValueError(f"{data_dir} has {meta['vocab_size']} token ids but the model of {source} knows "
                         f"{model_vocab}; use a dataset prepared with the model's tokenizer, or train from scratch")


def existing_run(out_dir):
    """What out_dir already holds, as 'ckpt.pt at iter 600, saved 2026-12-04 10:31' (a sharded
    ckpt_dcp too), or None: a new run there would write over it."""
    path, link = os.path.join(out_dir, "ckpt.pt"), os.path.join(out_dir, "ckpt_dcp")
    found = path if os.path.isfile(path) else link if os.path.lexists(link) else None
    if found is None:  # no latest save, but kept ones a new run's pruning would take for its own
        kept = sorted(f for f in (os.listdir(out_dir) if os.path.isdir(out_dir) else [])
                      if kept_iter(f, "ckpt-") is not None or kept_iter(f, "ckpt_dcp-") is not None)
        return f"kept checkpoints {', '.join(kept[:3])}{', ...' if len(kept) > 3 else ''}" if kept else None
    try:
        if found == path:
            it = load_checkpoint(path)["iter_num"]
        else:
            it = torch.load(os.path.join(link, "run.pt"), map_location="cpu", weights_only=True)["iter_num"]
    except Exception:  # damaged or unfinished: still a run someone may want back
        it = "? (unreadable)"
    when = time.strftime("%Y-%m-%d %H:%M", time.localtime(os.lstat(found).st_mtime))
    return f"{os.path.basename(found)} at iter {it}, saved {when}"


def checkpoint_tokenizer(saved, vocab, source, data_dir="", meta=None, fallback=()):
    """The tokenizer a checkpoint's model reads, found and checked here for every stage, as
    (Tokenizer, meta, folder). saved: the checkpoint's "tokenizer" record; vocab: its model's
    vocab_size; source names the checkpoint in errors.
    - data_dir given (a dataset, or any folder with a meta.json, nanoGPT's meta.pkl or a tokenizer.json;
      meta: its meta.json, if read already): that folder's tokenizer, which must be the one the
      checkpoint trained with (check_tokenizer); meta and folder are the dataset's.
    - else the checkpoint's own record (data.tokenizer.tokenizer_record), which rebuilds it: no dataset
      needed (meta {"vocab_size", "tokenizer"}, folder None).
    - else (a checkpoint from before the record could rebuild it) as before: the first of the
      fallback folders with a tokenizer, checked; else GPT-2's BPE for a GPT-2-sized vocabulary,
      as nanoGPT assumes (folder None)."""
    if data_dir:
        if meta is None:
            meta, _ = find_meta([data_dir], vocab)
        check_tokenizer(saved, vocab, meta, data_dir, source)
        return Tokenizer.from_meta(meta, data_dir), meta, data_dir
    tok = Tokenizer.from_record(saved)
    if tok is not None:
        return tok, {"vocab_size": saved.get("vocab_size") or vocab, "tokenizer": tok.spec}, None
    meta, folder = find_meta(fallback, vocab)
    if folder is not None:  # a tokenizer found on disk, not GPT-2's assumed for a GPT-2-sized model
        check_tokenizer(saved, vocab, meta, folder, source)
    return Tokenizer.from_meta(meta, folder), meta, folder


def run_folders(out_dir, ckpt):
    """Where a checkpoint from before tokenizer records may find its tokenizer: its own folder, then
    the folder of the dataset its run trained on."""
    cfg = ckpt.get("config", {})
    return [out_dir, dataset_dir(cfg.get("dataset", ""), cfg.get("data_dir", ""))]


def load_model(init_from="resume", out_dir="out", data_dir="", name="ckpt.pt"):
    """A model to use, for sample.py, evaluate.py and ablate.py: (the GPT on the CPU, its Tokenizer,
    {"config", "iter_num", "tokenizer"} of the run, empty for pretrained weights). init_from: 'resume'
    (out_dir's ckpt.pt, or the checkpoint there called name, with its tokenizer: checkpoint_tokenizer),
    OpenAI's GPT-2 names, or 'hf:PATH'."""
    if init_from == "resume":
        path = os.path.join(out_dir, name)
        ckpt = load_checkpoint(path)
        tok, _, _ = checkpoint_tokenizer(ckpt.get("tokenizer"), ckpt["model_args"]["vocab_size"], path, data_dir,
                                         fallback=run_folders(out_dir, ckpt))
        run = {"config": ckpt.get("config", {}), "iter_num": ckpt.get("iter_num"), "tokenizer": ckpt.get("tokenizer")}
        return model_from_checkpoint(ckpt), tok, run
    if init_from not in GPT2_NAMES and not init_from.startswith("hf:"):
        raise ValueError(f"unknown --init_from={init_from!r}; use 'resume', "
                         f"{', '.join(map(repr, GPT2_NAMES))} or 'hf:PATH'")
    model_args, weights = load_pretrained(init_from)
    model = GPT(GPTConfig(**model_args))
    model.load_state_dict(weights)
    if init_from in GPT2_NAMES:
        return model, Tokenizer(GPT2_BPE), {}
    meta, folder = find_meta([data_dir, init_from[3:]], model_args["vocab_size"])
    return model, Tokenizer.from_meta(meta, folder), {}


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
    from hf_gpt2 import gpt2_config_from_hf, gpt2_state_dict_from_hf

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


RUN_CHOICES = ("dropout", "fused_loss")  # GPTConfig fields a run may change on the same weights


def start_from(init_from, model_args, chosen, meta, data_dir, resume_ckpt=None, out_dir="out"):
    """What train.py's --init_from starts a run from. model_args: the GPTConfig fields as the
    run's keys set them; chosen: the keys the user set (a config file or --key=value); meta: the
    dataset's meta.json (in data_dir); resume_ckpt: out_dir's checkpoint, for 'resume'.
    Returns (model_args, ckpt): the model to build, and None for 'scratch', the whole checkpoint
    for 'resume', or {"model": weights} to start from weights only (a fresh optimizer, iteration
    count and random states). A checkpoint must have been trained with the dataset's tokenizer
    (check_tokenizer). Raises ValueError with one line that says what to do."""
    model_args = dict(model_args)
    if init_from == "scratch":
        model_args["vocab_size"] = model_args["vocab_size"] or meta["vocab_size"]
        if model_args["vocab_size"] < meta["vocab_size"]:
            raise ValueError(f"--vocab_size={model_args['vocab_size']} is smaller than the dataset's {meta['vocab_size']}")
        return model_args, None
    if init_from == "resume" or init_from.startswith("ckpt:"):  # ckpt:PATH: another run's weights, to finetune
        ckpt, source = resume_ckpt, resume_ckpt.get("sharded") if resume_ckpt else None
        source = source or os.path.join(out_dir, "ckpt.pt")
        if init_from != "resume":
            path = init_from[len("ckpt:"):]
            source = os.path.join(path, "ckpt.pt") if os.path.isdir(path) else path
            try:
                ckpt = load_checkpoint(source)
            except (FileNotFoundError, RuntimeError) as e:
                raise ValueError(str(e)) from None
        # raises unless the dataset speaks the checkpoint's tokenizer
        checkpoint_tokenizer(ckpt.get("tokenizer"), ckpt["model_args"]["vocab_size"], source, data_dir, meta)
        # a flag newer than the checkpoint takes GPTConfig's default: the model as it was saved
        saved_args = {**{f.name: f.default for f in fields(GPTConfig)}, **ckpt["model_args"]}
        clash = [f"{k}={chosen[k]!r} (checkpoint: {v!r})" for k, v in saved_args.items()
                 if k in chosen and k not in RUN_CHOICES and chosen[k] != v]
        if clash:
            raise ValueError(f"cannot {'resume' if init_from == 'resume' else 'finetune'} with a different model: "
                             f"{', '.join(clash)}; drop these overrides or start a new --out_dir")
        model_args.update(saved_args, **{k: model_args[k] for k in RUN_CHOICES})
        return model_args, (ckpt if init_from == "resume" else {"model": ckpt["model"]})
    if init_from in GPT2_NAMES or init_from.startswith("hf:"):  # OpenAI's GPT-2 or a local Hugging Face GPT-2
        fixed = [f"--{k}" for k in chosen if k in model_args and k not in (*RUN_CHOICES, "block_size", "attn_impl")]
        if fixed:
            raise ValueError(f"--init_from={init_from} brings its own architecture; drop {', '.join(fixed)}")
        tok = meta["tokenizer"]
        if init_from in GPT2_NAMES and (tok.get("kind"), tok.get("name")) not in (("tiktoken", "gpt2"),
                                                                                  ("tiktoken", "r50k_base")):
            raise ValueError(f"{init_from} reads GPT-2 BPE tokens but {data_dir} holds {tok.get('kind')} tokens; "
                             f"use a GPT-2-tokenized dataset, e.g. --dataset=shakespeare "
                             f"(python data/shakespeare/prepare.py)")
        try:
            pretrained_args, weights = load_pretrained(init_from, model_args["dropout"], model_args["block_size"])
        except OSError as e:
            raise ValueError(str(e)) from None
        pretrained_args.update({k: model_args[k] for k in ("attn_impl", "fused_loss")})
        if meta["vocab_size"] > pretrained_args["vocab_size"]:
            raise ValueError(f"{data_dir} has {meta['vocab_size']} token ids but {init_from} knows "
                             f"{pretrained_args['vocab_size']}; prepare the data with the model's tokenizer")
        return pretrained_args, {"model": weights}  # weights only, as for ckpt:PATH
    raise ValueError(f"unknown --init_from={init_from!r}; use 'scratch', 'resume', 'ckpt:PATH', "
                     f"{', '.join(repr(n) for n in GPT2_NAMES)} or 'hf:PATH'")


def run_info():
    """Versions and the git commit, recorded beside every run."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                                cwd=os.path.dirname(os.path.abspath(__file__)), timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    return {"git_commit": commit or None, "torch": torch.__version__, "cuda": torch.version.cuda,
            "numpy": np.__version__, "python": sys.version.split()[0], "argv": sys.argv}
