"""
Train a GPT. One process on a laptop CPU or one GPU:

    python train.py config/train_shakespeare_char_cpu.py
    python train.py config/train_shakespeare_char.py --use_rope=True

Many GPUs (DDP), on one node or several:

    torchrun --standalone --nproc_per_node=8 train.py config/train_gpt2.py
    torchrun --standalone --nproc_per_node=8 train.py config/finetune_gpt2_xl_fsdp.py  # FSDP: sharded
    torchrun --nnodes=2 --node_rank=0 --master_addr=10.0.0.1 --master_port=29500 \
        --nproc_per_node=8 train.py config/train_gpt2.py     # and node_rank=1 on the other

Every global in the config section is a key: set it in a config file or as --key=value
(python train.py --help lists them). The loop runs only under `if __name__ == "__main__"`;
what it calls lives in modules of its own: checkpoint.py (saving, loading, --init_from),
data/loader.py (batches, estimate_loss), device.py (device, dtype, peak FLOPS) and optim.py
(the learning-rate schedule and the optimizer step), parallel.py (DDP, FSDP, activation checkpointing,
sharded checkpoints).
"""

import atexit
import json
import math
import os
import random
import signal
import sys
import time
from collections import deque
from dataclasses import fields

import numpy as np
import torch

from checkpoint import (clear_run, evaluation_at, existing_run, run_info, rng_state, save_checkpoint, seed_rank,
                        set_rng_state, start_from)
from data.common import DataError, dataset_dir, load_meta
from data.loader import estimate_loss, open_batches
from data.tokenizer import tokenizer_record
from device import (autocast_context, bf16_warning, cpu_has_bf16, dtype_error, lookup_peak_flops, resolve_device,
                    resolve_dtype, setup_device)
from model import GPTConfig
from optim import (apply_lr, configure_optimizers, eta_seconds, get_lr, load_scaler_state, optimizer_step,
                   remember_initial_lr, scaling_law_lr)
from parallel import (all_finite, build_model, fsdp_error, full_state, load_optimizers, load_resume, load_sharded,
                      save_sharded, sync_gradients, unfuse, wrap_ddp)

# ----------------------------------------------------------------------------- config
# I/O
out_dir = "out"  # where ckpt.pt, config.json and log.jsonl go
eval_interval = 2000  # evaluate (and maybe checkpoint) every this many iterations, and at the end
log_interval = 1  # print and log a training step every this many iterations
eval_iters = 200  # batches per split in each evaluation
eval_only = False  # evaluate once and exit
always_save_checkpoint = True  # save at every evaluation, not only when val loss improves
ckpt_interval = 0  # also save every this many iterations regardless of val loss (0: off)
target_val_loss = 0.0  # stop at the first evaluation whose val loss is at most this, and save (0: off)
init_from = "scratch"  # 'scratch', 'resume' (from out_dir/ckpt.pt), or 'ckpt:PATH' (its weights only, to finetune)
# ... or OpenAI's 'gpt2', 'gpt2-medium', 'gpt2-large', 'gpt2-xl', or 'hf:PATH' (a local Hugging Face GPT-2 folder)
overwrite = False  # let a new run (any init_from but 'resume') start in an out_dir that holds a checkpoint, replacing it
# wandb (works offline with WANDB_MODE=offline)
wandb_log = False  # also send log.jsonl's records to Weights & Biases
wandb_project = "gptlab"  # the wandb project the run goes to
wandb_run_name = "run"  # the run's name in wandb (it need not be unique)
# data
dataset = "shakespeare_char"  # a prepared folder under data/
data_dir = ""  # or any folder holding train.bin, val.bin, meta.json (overrides dataset)
gradient_accumulation_steps = 5 * 8  # micro-steps per optimizer step, summed over all ranks
batch_size = 12  # sequences per micro-step per rank
length_bands = 1  # datasets of whole examples (a batch_module): each batch takes examples of like length from one of this many bands (less padding, same odds per example)
qa_share = 0.0  # birthplace pretraining: mixed training, the training people's questions as this share of the train tokens from step 0 (Allen-Zhu & Li 2023; docs/birthplace.md)
random_windows = False  # birthplace pretraining: span corruption keeps a stretch starting anywhere in a paragraph, not only its beginning
aug_share = 0.0  # birthplace pretraining: knowledge augmentation, this share of the documents drawn from rewritten copies (prepare.py --augment; Allen-Zhu & Li 2023)
# model: every field of model.GPTConfig is also a key (the defaults are GPT-2 124M)
globals().update({f.name: f.default for f in fields(GPTConfig)})
vocab_size = None  # None: from the dataset's meta.json
pad_vocab = True  # new runs round the vocabulary up to a multiple of 64 (the model's default, False, is GPT-2 exactly)
# optimizer
optimizer = "adamw"  # 'adamw'; 'adafactor' (less memory); 'muon' (Muon for the blocks' matrices, AdamW for the rest)
learning_rate = 6e-4  # peak learning rate; 'auto': Kaplan et al.'s scaling law from the model's size (scaling_law_lr)
muon_lr = 0.02  # with optimizer='muon': the matrices' peak rate (Keller Jordan's); the schedule scales it like learning_rate
max_iters = 600000  # optimizer steps in all (a resume goes on to this count)
weight_decay = 1e-1  # decoupled weight decay, on weight matrices only (not biases, norms or gains)
beta1 = 0.9  # AdamW's first-moment decay
beta2 = 0.95  # AdamW's second-moment decay (0.99 for small batches)
grad_clip = 1.0  # clip the global gradient norm to this (0: off)
# learning-rate schedule: linear warmup, then cosine decay to min_lr
use_warmup = True  # linear warmup over warmup_iters; False starts at the full rate
warmup_iters = 2000  # iterations of linear warmup up to learning_rate
use_cosine = True  # cosine decay to min_lr by lr_decay_iters; False keeps the peak rate
decay_lr = True  # nanoGPT's name: False turns the whole schedule off (constant learning_rate)
lr_decay_iters = 600000  # usually max_iters
min_lr = 6e-5  # usually learning_rate / 10 (Chinchilla)
# system
backend = "auto"  # DDP backend: 'auto' is nccl on CUDA, gloo on CPU
device = "auto"  # 'auto' (cuda, then mps, then cpu), 'cpu', 'cuda', 'cuda:1', 'mps'
dtype = "auto"  # 'auto' (CUDA: bf16 where supported, else fp16; CPU: bf16 only with bf16 units, else fp32), 'float32', 'bfloat16', 'float16'
compile = False  # torch.compile the model (PyTorch 2); slow to start, faster after
peak_flops = 0.0  # device peak FLOP/s for MFU; 0 looks up known GPUs, else MFU is not shown
seed = 1337  # initialisation, data order and dropout (each rank's dropout takes seed + rank)
skip_nonfinite = 0  # skip up to this many steps with a NaN/inf loss before stopping (0: stop at the first)
keep_last = 0  # besides ckpt.pt, keep this many earlier checkpoints as ckpt-<iter>.pt (0: none)
# memory (docs/fsdp.md)
fsdp = False  # under torchrun: shard parameters, gradients and optimizer state over the ranks (FSDP2) instead of DDP
activation_checkpointing = False  # recompute each block's activations in backward: less memory, ~1/3 more compute
ckpt_format = "full"  # 'full': one ckpt.pt gathered on rank 0; 'sharded': a folder per save, every rank writes its part
# ------------------------------------------------------------------------------
CONFIG_KEYS = [k for k, v in globals().items() if not k.startswith("_") and isinstance(v, (int, float, bool, str, tuple, type(None)))]
AUTO_KEYS = ["learning_rate"]  # keys that also take the word 'auto' (a list, so not a key itself)


# --------------------------------------------------------------------------- main
if __name__ == "__main__":
    from configurator import configure

    chosen = configure(globals())
    # every rank reads checkpoints itself (memory-mapped: the ranks of a node share the page cache),
    # so on several nodes out_dir and ckpt:PATH must be on a filesystem that every node sees
    on_other_node = "" if int(os.environ.get("RANK", 0)) == 0 else \
        f" (rank {os.environ['RANK']}: with several nodes, put out_dir and ckpt:PATH on a filesystem every node shares)"
    if init_from != "resume" and not overwrite and (found := existing_run(out_dir)):
        sys.exit(f"error: {out_dir} already holds a run ({found}); continue it with --init_from=resume, "
                 f"choose another --out_dir, or pass --overwrite=True to start over in it")
    resume_ckpt = None
    if init_from == "resume":  # the run's own settings are the defaults; what is given again wins
        try:
            resume_ckpt = load_resume(out_dir)  # ckpt.pt in host memory, or a sharded checkpoint's run state
        except (FileNotFoundError, RuntimeError) as e:
            sys.exit(f"error: {e}{on_other_node}")
        for k, v in resume_ckpt.get("config", {}).items():
            if k in CONFIG_KEYS and k not in chosen and k not in ("init_from", "out_dir", "eval_only"):
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
    fsdp = fsdp and ddp  # one process has nothing to shard
    device = resolve_device(device)
    if ddp:
        import torch.distributed as dist

        rank, local_rank, world_size = int(os.environ["RANK"]), int(os.environ["LOCAL_RANK"]), int(os.environ["WORLD_SIZE"])
        if gradient_accumulation_steps % world_size:
            sys.exit(f"error: gradient_accumulation_steps={gradient_accumulation_steps} is not divisible by "
                     f"the {world_size} processes; make it a multiple of {world_size}")
        if device.startswith("cuda"):
            device = f"cuda:{local_rank}"
    else:
        rank, local_rank, world_size = 0, 0, 1
    setup_device(device)  # cuda:N becomes the current GPU, TF32 on; a CPU flushes denormals
    if ddp:
        on_gpu = device.startswith("cuda")
        dist.init_process_group(backend=("nccl" if on_gpu else "gloo") if backend == "auto" else backend,
                                device_id=torch.device(device) if on_gpu else None)  # NCCL binds to this GPU now
        atexit.register(lambda: dist.is_initialized() and dist.destroy_process_group())  # also after sys.exit
    if fsdp and eval_iters % world_size:  # under FSDP every rank must run as many forwards as the others
        sys.exit(f"error: with --fsdp=True, eval_iters={eval_iters} must be a multiple of the {world_size} processes")
    master = rank == 0  # only rank 0 logs and writes checkpoints
    accum = gradient_accumulation_steps // world_size  # micro-steps per rank
    tokens_per_iter = gradient_accumulation_steps * batch_size * block_size
    device_type = device.split(":")[0]
    dtype = resolve_dtype(dtype, device)
    if error := dtype_error(dtype, device) or (fsdp and fsdp_error(optimizer, dtype)):
        sys.exit(f"error: {error}")
    if device_type == "cpu" and master and (warning := bf16_warning(dtype, cpu_has_bf16())):
        print(warning, file=sys.stderr)
    ctx = autocast_context(device, dtype)
    # fp16 gradients underflow without loss scaling; bf16 and fp32 need none
    scaler = torch.amp.GradScaler(device_type, enabled=(dtype == "float16"))
    torch.manual_seed(seed + rank)  # dropout differs per rank; the batch generator below does not
    random.seed(seed + rank)
    np.random.seed(seed + rank)
    batch_rng = np.random.default_rng(seed)  # same on every rank: ranks take different rows

    # ---- data
    ddir = dataset_dir(dataset, data_dir)
    try:
        meta = load_meta(ddir)  # checked: a damaged folder is one line (data.common.load_meta, open_tokens)
    except (FileNotFoundError, DataError) as e:
        sys.exit(f"error: {e}")
    data_tokenizer = tokenizer_record(meta, ddir)  # every checkpoint carries it (checkpoint.checkpoint_tokenizer)
    try:  # train and val batch sources, chosen once; the loop and estimate_loss only call draw and get
        splits = {s: open_batches(ddir, s, meta, block_size, device, length_bands, qa_share=qa_share,
                                  random_windows=random_windows, aug_share=aug_share) for s in ("train", "val")}
    except ValueError as e:
        sys.exit(f"error: {e}")

    # ---- model: from scratch, resumed, or from other weights (checkpoint.start_from)
    try:
        model_args, ckpt = start_from(init_from, {f.name: globals()[f.name] for f in fields(GPTConfig)},
                                      chosen, meta, ddir, resume_ckpt, out_dir)
    except ValueError as e:
        sys.exit(f"error: {e}{on_other_node}")
    config.update({k: v for k, v in model_args.items() if k in config})  # the model as built: a finetune's is its checkpoint's
    iter_num, best_val_loss, elapsed = 0, float("inf"), 0.0  # elapsed: seconds of training before this process
    last_eval = -1  # the iteration of the last evaluation in log.jsonl: not evaluated (and logged) again
    reached = False  # target_val_loss
    if init_from == "resume":
        iter_num, best_val_loss, elapsed = ckpt["iter_num"], ckpt["best_val_loss"], ckpt.get("elapsed_s", 0.0)
        if record := evaluation_at(out_dir, iter_num):
            last_eval = iter_num  # and a run that stopped at its target stays stopped
            reached = target_val_loss > 0 and record["val_loss"] is not None and record["val_loss"] <= target_val_loss
    ckpt_path = os.path.join(out_dir, "ckpt.pt")
    try:
        gptconf = GPTConfig(**model_args)
    except ValueError as e:
        sys.exit(f"error: {e}")
    # whole on each rank, or (fsdp) each rank's shards only; the weights: ckpt's, else a fresh init at seed
    model = build_model(gptconf, ckpt.get("model") if ckpt else None, device, dtype, fsdp, activation_checkpointing,
                        compile, fill=not (ckpt and "sharded" in ckpt))  # FSDP compiles each block here
    torch.manual_seed(seed + rank)  # dropout's streams start here, whichever ranks built the whole model
    if learning_rate == "auto":  # resolved once; config.json and the checkpoint keep the number
        learning_rate = config["learning_rate"] = scaling_law_lr(model.num_body_params())
        if master:
            print(f"learning_rate=auto: {learning_rate:.3e} for N = {model.num_body_params():,} non-embedding "
                  f"parameters (Kaplan et al. 2020)")
    try:
        optimizers = configure_optimizers(model, weight_decay, learning_rate, (beta1, beta2), device_type,
                                                optimizer, muon_lr)  # a list: Muon comes with an AdamW
    except ValueError as e:
        sys.exit(f"error: {e}")
    unfuse(optimizers, fsdp)
    remember_initial_lr(optimizers)  # each group follows the schedule from its own peak (Muon's: muon_lr)
    if init_from == "resume":
        if "sharded" in ckpt:  # weights and optimizer from the folder, resharded to this many ranks
            load_sharded(model, optimizers, ckpt["sharded"])
        else:
            load_optimizers(model, optimizers, ckpt["optimizer"], fsdp)
        load_scaler_state(scaler, ckpt.get("scaler"))  # a bf16/fp32 run's is empty
        if "rng" in ckpt:
            if rank < len(ckpt["rng"]):
                set_rng_state(ckpt["rng"][rank])
            else:  # saved by fewer ranks (one process, say): not rank 0's stream again, or ranks share dropout masks
                seed_rank(ckpt["rng"][0], rank)
            batch_rng.bit_generator.state = ckpt["batch_rng"]
    ckpt = resume_ckpt = None  # free memory
    raw_model = model  # checkpoints always hold the plain module's weights (under FSDP: gathered)
    if compile:
        if master:
            print(f"compiling the {'blocks' if fsdp else 'model'}... (takes a while)")
        if not fsdp:  # FSDP's blocks were compiled one by one in build_model
            model = torch.compile(model)
    if ddp and not fsdp:
        model = wrap_ddp(model, device)
    peak = peak_flops or lookup_peak_flops(device)

    if master:
        if init_from != "resume" and overwrite and (gone := clear_run(out_dir)):  # --overwrite=True: nothing of the old run stays
            print(f"overwrite: deleted the old run's {', '.join(gone)} from {out_dir}")
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
    # a resume goes on with the run's log; a new run (--overwrite=True included) starts its own
    log_file = open(os.path.join(out_dir, "log.jsonl"), "a" if init_from == "resume" else "w") if master else None

    def log(record):
        """One JSON object per line of out_dir/log.jsonl (a NaN or inf is written as null)."""
        record = {k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in record.items()}
        log_file.write(json.dumps(record) + "\n")
        log_file.flush()
        if wandb_log:
            wandb.log({k: v for k, v in record.items() if v is not None}, step=record["iter"])

    def checkpoint(reason):
        states = gather_rng()  # collective under DDP: every rank takes part
        run = {"scaler": scaler.state_dict(), "model_args": model_args, "iter_num": iter_num,
               "best_val_loss": best_val_loss, "config": config, "rng": states,
               "batch_rng": batch_rng.bit_generator.state, "elapsed_s": time.time() - t_start,
               "tokenizer": data_tokenizer}
        if ckpt_format == "sharded":  # every rank writes its own shards
            if not all_finite(raw_model):
                if master:
                    print(f"warning: not saving at iter {iter_num}: the weights hold NaN/inf; {out_dir}/ckpt_dcp keeps "
                          f"the last good state", file=sys.stderr)
                return
            try:
                save_sharded(raw_model, optimizers, run, out_dir, keep_last)
            except OSError as e:  # a full disk: the last complete folder stays the latest
                sys.exit(f"error: {e}; free some space, then continue with --init_from=resume --out_dir={out_dir}")
            if master:
                print(f"saved sharded checkpoint to {out_dir}/ckpt_dcp at iter {iter_num} ({reason})")
            return
        model_sd, optimizer_sds = full_state(raw_model, optimizers, fsdp)  # FSDP: gathered to rank 0
        if not master:
            return
        if not all(torch.isfinite(v).all() for v in model_sd.values()):
            print(f"warning: not saving at iter {iter_num}: the weights hold NaN/inf; {ckpt_path} keeps the last "
                  f"good state", file=sys.stderr)
            return
        try:
            save_checkpoint({"model": model_sd, "optimizer": optimizer_sds, **run}, ckpt_path, keep_last)
        except OSError as e:  # a full disk: ckpt.pt still holds the last good save
            sys.exit(f"error: {e}; free some space, then continue with --init_from=resume --out_dir={out_dir}")
        print(f"saved checkpoint to {ckpt_path} at iter {iter_num} ({reason})")

    def gather_rng():
        if not ddp:
            return [rng_state()]
        states = [None] * world_size
        dist.all_gather_object(states, rng_state())
        return states

    # ---- stop cleanly on SIGINT / SIGTERM: finish the step, save, exit. Schedulers and launchers deliver
    # a signal more than once (SLURM signals every process of a job step, and torchrun forwards it to its
    # workers again), so a repeat within a second of the first is a copy and changes nothing; one that
    # comes later (a second Ctrl-C, a second scancel or kill) exits at once without saving, even from
    # a save that hangs: the last whole checkpoint stays (saves are atomic)
    stop_signal, first_signal_at = [], [0.0]

    def on_signal(signum, frame):
        if stop_signal:
            if time.time() - first_signal_at[0] < 1.0:
                return  # a copy of the first
            print(f"second {signal.Signals(signum).name}: exiting now without saving", file=sys.stderr)
            os._exit(128 + signum)
        stop_signal.append(signum)
        first_signal_at[0] = time.time()
        if master:
            print(f"\n{signal.Signals(signum).name}: finishing this step, then saving and exiting (the same signal "
                  f"again, a second or more from now, exits at once without saving)", file=sys.stderr)

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)

    def stop_signal_everywhere(stopping):
        """Under DDP every rank must stop at the same step: true if any rank got a signal."""
        flag = torch.tensor([float(stopping)], device=device)
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        return flag.item() > 0

    # ---- the loop
    raw_model.train()
    loss_sum = torch.zeros((), device=device)  # this step's loss, summed over micro-steps
    nonfinite_steps = 0
    if reached and master:
        print(f"val loss at iter {iter_num} was already at most target_val_loss={target_val_loss}: nothing to train")
    t_start = time.time() - elapsed  # the run's clock: the log's elapsed_s, going on across resumes
    t0 = time.time()
    recent_dt = deque(maxlen=20)  # the last steps' seconds, for the ETA (not the first: it may compile)
    eval_s, evals_done, steps_done = None, 0, 0  # an evaluation's seconds with its checkpoint, once measured
    while True:
        lr = get_lr(iter_num, learning_rate, min_lr, warmup_iters, lr_decay_iters, use_warmup, use_cosine, decay_lr)
        apply_lr(optimizers, lr, learning_rate)

        # evaluate, log, checkpoint
        if ((iter_num % eval_interval == 0 or iter_num >= max_iters) and iter_num != last_eval) or eval_only:
            t_eval = time.time()
            try:
                losses = estimate_loss(model, splits, eval_iters, batch_size, ctx, rank=rank, world_size=world_size)
            except DataError as e:  # a batch held an id outside the vocabulary
                sys.exit(f"error: {e}")
            reached = target_val_loss > 0 and losses["val"] <= target_val_loss
            if master:
                val_ppl = math.exp(losses["val"]) if losses["val"] < 700 else float("inf")  # NaN too; logged as null
                print(f"step {iter_num}: train loss {losses['train']:.4f}, val loss {losses['val']:.4f}, "
                      f"val ppl {val_ppl:.2f}")
                if iter_num != last_eval:  # eval_only on a resume: this iteration's line is in the log already
                    log({"iter": iter_num, "tokens": iter_num * tokens_per_iter, "val_loss": losses["val"],
                         "val_ppl": val_ppl, "train_loss_eval": losses["train"], "lr": lr,
                         "elapsed_s": time.time() - t_start})
            last_eval = iter_num
            improved = losses["val"] < best_val_loss
            best_val_loss = min(best_val_loss, losses["val"])
            # eval_only never saves: a look at the run, not a step of it
            interval_due = ckpt_interval and iter_num % ckpt_interval == 0  # deferred to here: one save, not two
            if not eval_only and (iter_num > 0 or reached) and (improved or always_save_checkpoint or reached
                                                                 or interval_due):
                checkpoint("val improved" if improved else "always_save_checkpoint" if always_save_checkpoint
                           else "target_val_loss" if reached else "ckpt_interval")
            if reached and master:
                print(f"val loss {losses['val']:.4f} <= target_val_loss={target_val_loss} at iter {iter_num}: stopping")
            t0 = time.time()  # the next step's ms/iter leaves the evaluation out
            evals_done += 1
            if not (compile and evals_done == 1):  # a compiled run's first evaluation compiles its graph
                eval_s = t0 - t_eval
        if iter_num >= max_iters or eval_only or reached:
            break

        # one optimizer step: accum micro-steps per rank, gradients averaged over ranks by DDP or FSDP
        rows = splits["train"].draw(batch_rng, world_size * accum, batch_size)
        for micro in range(accum):
            try:
                X, Y = splits["train"].get(rows[rank * accum + micro])  # ids checked on the CPU first
            except DataError as e:
                sys.exit(f"error: {e}")
            if ddp:  # reduce the gradients only on the last micro-step
                sync_gradients(model, raw_model, fsdp, micro == accum - 1)
            with ctx:
                _, loss = model(X, Y)
                loss = loss / accum  # the gradient of the mean over micro-steps
            scaler.scale(loss).backward()
            loss_sum += loss.detach().float()
        if ddp:  # the mean over ranks: what we log, and every rank sees the same non-finite verdict
            dist.all_reduce(loss_sum, op=dist.ReduceOp.AVG)
        lossf = loss_sum.item()  # a sync point; cheap next to a step
        loss_sum.zero_()
        # a NaN/inf loss, or NaN/inf gradients behind a finite loss (no optimizer then steps; under fp16 that is
        # an overflow, and the scaler lowers its scale and goes on, as it always does)
        bad = f"loss is {lossf}" if not math.isfinite(lossf) else None
        if bad is None and not optimizer_step(optimizers, scaler, model, grad_clip) and not scaler.is_enabled():
            bad = "gradients are not finite"
        if bad:
            for opt in optimizers:  # drop this step's gradients; the weights are still good
                opt.zero_grad(set_to_none=True)
            nonfinite_steps += 1
            if nonfinite_steps > skip_nonfinite:
                if master:
                    print(f"error: {bad} at iter {iter_num}; stopping without saving (the last checkpoint "
                          f"is untouched). Lower --learning_rate, or --skip_nonfinite=N to skip N bad steps", file=sys.stderr)
                sys.exit(1)
            if master:
                print(f"warning: {bad} at iter {iter_num}; skipped the step "
                      f"({nonfinite_steps} of --skip_nonfinite={skip_nonfinite})", file=sys.stderr)
            iter_num += 1
            continue
        t1 = time.time()
        dt, t0 = t1 - t0, t1
        steps_done += 1
        if steps_done > 1:
            recent_dt.append(dt)
        iter_num += 1
        if iter_num % log_interval == 0 and master:
            mfu = raw_model.estimate_mfu(tokens_per_iter, dt, peak, world_size)  # peak is one device's
            mfu_text = f", mfu {mfu * 100:.1f}%" if mfu is not None else ""
            tflops = raw_model.achieved_flops(tokens_per_iter, dt, world_size) / 1e12  # per device, like MFU; no peak needed
            eta = None  # steps at their median time, evaluations at their measured (until then estimated) time
            if recent_dt:
                step_s = sorted(recent_dt)[len(recent_dt) // 2]
                # until one is measured: 2 splits x eval_iters forwards, against accum forward+backward (~3 forwards)
                eval_cost = eval_s if eval_s is not None else step_s * 2 * eval_iters / (3 * accum * world_size)
                eta = eta_seconds(iter_num, max_iters, eval_interval, step_s, eval_cost)
            progress = f", {100 * iter_num / max_iters:.1f}% done, ETA " + (
                f"{int(eta) // 3600}:{int(eta) % 3600 // 60:02d}:{int(eta) % 60:02d}" if eta is not None else "?")
            print(f"iter {iter_num}: loss {lossf:.4f}, lr {lr:.2e}, time {dt * 1000:.2f}ms, "
                  f"{tokens_per_iter / dt:,.0f} tok/s{mfu_text}, {tflops:.3g} TFLOP/s{progress}")
            log({"iter": iter_num, "tokens": iter_num * tokens_per_iter, "train_loss": lossf, "lr": lr,
                 "dt_ms": dt * 1000, "tok_per_s": tokens_per_iter / dt, "mfu": mfu, "tflops": tflops,
                 "elapsed_s": t1 - t_start, "progress": iter_num / max_iters, "eta_s": eta})
        if ckpt_interval and iter_num % ckpt_interval == 0 and not (iter_num % eval_interval == 0 or iter_num >= max_iters):
            checkpoint("ckpt_interval")  # at an evaluation's iteration the evaluation saves it, with its val loss
        stopping = bool(stop_signal)  # read once: a signal that lands while the ranks agree waits a step
        if ddp:
            stopping = stop_signal_everywhere(stopping)
        if stopping:
            checkpoint(signal.Signals(stop_signal[0]).name if stop_signal else "a signal to another rank")
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
