"""
How one model is spread over the ranks of a torchrun job, and how a sharded model saves.

    checkpoint_activations   recompute each block's activations in backward (any mode)
    build_model              the GPT on this rank: whole (one process, DDP) or sharded with FSDP2
    wrap_ddp                 DDP around a whole model
    sync_gradients           skip the gradient reduction on non-final micro-steps (DDP and FSDP)
    full_state               the model's and optimizers' state dicts as ckpt.pt holds them
    load_optimizers          ckpt.pt's optimizer state into this run's optimizers (any mode)
    save_sharded / load_sharded / latest_sharded    the sharded format (torch.distributed.checkpoint)
    convert                  a sharded checkpoint to a ckpt.pt:  python parallel.py OUT_DIR/ckpt_dcp

FSDP2 (torch.distributed.fsdp.fully_shard) shards every transformer block, then the root (the
embeddings, the last norm, the head): each rank keeps 1/world_size of each parameter, of its
gradient and of the optimizer's state, and gathers a block's weights only while it computes.
Everything here is PyTorch's own: fully_shard, torch.utils.checkpoint and
torch.distributed.checkpoint with its state-dict helpers. See docs/fsdp.md.
"""

import functools
import os
import shutil
import sys
import warnings

import torch
import torch.distributed as dist
from torch.utils.checkpoint import checkpoint

from model import GPT, rope_tables

# torch.distributed.checkpoint (dcp and its state-dict helpers) is imported inside the functions
# that use it: importing it costs most of a second, and every train.py start would pay that


def state_dict_helpers():
    """torch.distributed.checkpoint and its state-dict helpers, imported on first use."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint import state_dict
    return dcp, state_dict


def gathered():
    """StateDictOptions for whole tensors, gathered to rank 0, in host memory."""
    return state_dict_helpers()[1].StateDictOptions(full_state_dict=True, cpu_offload=True)


def fsdp_error(optimizer, dtype):
    """The one-line error for what FSDP here cannot run (or None)."""
    if optimizer == "muon":
        return ("--fsdp=True runs AdamW or Adafactor: Muon orthogonalises whole matrices, which FSDP shards; "
                "use --optimizer=adamw (or adafactor), or DDP (--fsdp=False)")
    if dtype == "float16":
        return ("--fsdp=True has no loss scaler for sharded fp16 gradients; use --dtype=bfloat16 (or float32), "
                "or DDP for fp16")
    return None


def checkpoint_activations(model):
    """Keep only each block's input in forward and recompute the rest in backward: activation
    memory falls from every block's intermediates to one block's, for about one more forward.
    A way of running, not part of the model (nothing in the state dict changes). use_reentrant=False
    saves and restores the RNG state, so dropout draws the same masks on recompute."""
    for block in model.transformer.h:
        block.forward = functools.partial(checkpoint, block.forward, use_reentrant=False)


def build_model(cfg, state, device, dtype, fsdp, activation_checkpointing=False, compile=False, fill=True):
    """The GPT this rank trains. Without fsdp: built whole (seeded by the caller), state loaded
    if given, moved to device. With fsdp (under torchrun): every rank builds it on the meta device
    (no memory), shards it, and allocates only its own shards; rank 0's whole state dict (the
    checkpoint's, or a fresh init on the CPU, the same as one process's at the same seed) is then
    broadcast into the shards, so the only whole copy is rank 0's, in host memory, during setup.
    fill=False leaves FSDP's shards unset, for a caller that loads them next (load_sharded)."""
    if not fsdp:
        model = GPT(cfg)
        if state is not None:
            model.load_state_dict(state)
        if activation_checkpointing:
            checkpoint_activations(model)
        return model.to(device)
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

    if state is None and fill and dist.get_rank() == 0:
        state = GPT(cfg).state_dict()  # the init, as one process makes it
    with torch.device("meta"):
        model = GPT(cfg)
    if activation_checkpointing:
        checkpoint_activations(model)
    if compile:  # each block's forward on its own, as torchtitan does: FSDP's gathers stay outside the
        for block in model.transformer.h:  # compiled code, and the state dict keeps its names. After the
            block.forward = torch.compile(block.forward)  # checkpointing: dynamo stops inside checkpoint()
    # GPT.forward returns logits[..., :vocab_size], a view; FSDP warns in case the caller writes into it
    # in place, which no caller here does
    warnings.filterwarnings("ignore", message="FSDP2-wrapped module .* returned a view tensor")
    mesh = init_device_mesh(device.split(":")[0], (dist.get_world_size(),))
    # bf16: weights gathered and computed in bf16, gradients reduced in fp32; fp32 leaves it all in fp32
    mp = MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32) if dtype == "bfloat16" \
        else MixedPrecisionPolicy()
    for block in model.transformer.h:
        fully_shard(block, mesh=mesh, mp_policy=mp)
    fully_shard(model, mesh=mesh, mp_policy=mp)
    model.to_empty(device=device)
    if cfg.use_rope:  # buffers outside the state dict: computed, as GPT.__init__ does
        cos, sin = rope_tables(cfg.head_dim, 2 * cfg.block_size, cfg.rope_theta)
        model.rope_cos.copy_(cos)
        model.rope_sin.copy_(sin)
    if fill:
        sd = state_dict_helpers()[1]
        sd.set_model_state_dict(model, state if dist.get_rank() == 0 else {},
                                options=sd.StateDictOptions(full_state_dict=True, broadcast_from_rank0=True))
    return model


def all_finite(model):
    """True if no rank's weights (its shards, under FSDP) hold a NaN or inf. Every rank calls this."""
    local = [p.to_local() if hasattr(p, "to_local") else p for p in model.parameters()]
    ok = torch.tensor([float(all(torch.isfinite(p).all() for p in local))], device=local[0].device)
    if dist.is_initialized():
        dist.all_reduce(ok, op=dist.ReduceOp.MIN)
    return ok.item() > 0


def wrap_ddp(model, device):
    from torch.nn.parallel import DistributedDataParallel as DDP

    # the model's buffers (RoPE tables) never change: no need to re-send them every step
    return DDP(model, device_ids=[int(device.split(":")[1])] if device.startswith("cuda") else None,
               broadcast_buffers=False)


def sync_gradients(model, raw_model, fsdp, last):
    """Reduce the gradients over the ranks on the last micro-step only (the others accumulate)."""
    if fsdp:
        raw_model.set_requires_gradient_sync(last)
    else:
        model.require_backward_grad_sync = last


def unfuse(optimizers, fsdp):
    """Fused AdamW has no DTensor kernel; FSDP's optimizers take the foreach path (same math).
    torch's Adafactor cannot step DTensors: under FSDP it becomes optim.ShardedAdafactor, the same
    optimizer (groups, state) with a step that can."""
    from optim import ShardedAdafactor

    if fsdp:
        for opt in optimizers:
            if type(opt) is torch.optim.Adafactor:
                opt.__class__ = ShardedAdafactor  # a subclass that adds no state: only step() changes
            for group in opt.param_groups:
                if group.get("fused"):
                    group["fused"], group["foreach"] = False, True


def _names(model, opt):
    """This optimizer's parameters as their state-dict names, in its own (flat) order: the order
    of torch's integer ids in opt.state_dict()."""
    name = {id(p): n for n, p in model.named_parameters()}
    return [name[id(p)] for group in opt.param_groups for p in group["params"]]


def full_state(model, optimizers, fsdp):
    """(model state dict, [optimizer state dicts]) as ckpt.pt holds them: whole tensors, and torch's
    integer parameter ids, so one process, DDP and FSDP resume each other's checkpoints. Under
    FSDP every rank must call this (it gathers); rank 0 gets the state in host memory, the others {}."""
    if not fsdp:
        return model.state_dict(), [opt.state_dict() for opt in optimizers]
    helpers = state_dict_helpers()[1]
    model_sd = helpers.get_model_state_dict(model, options=gathered())
    opt_sds = []
    for opt in optimizers:
        sd = helpers.get_optimizer_state_dict(model, opt, options=gathered())  # keyed by parameter name
        ids = {n: i for i, n in enumerate(_names(model, opt))}
        opt_sds.append({"state": {ids[n]: s for n, s in sd.get("state", {}).items()},
                        "param_groups": [{**g, "params": [ids[n] for n in g["params"]]}
                                         for g in sd.get("param_groups", [])]})
    return model_sd, opt_sds


def load_optimizers(model, optimizers, states, fsdp):
    """Load ckpt.pt's optimizer states (integer ids) into this run's optimizers, keeping each
    group's settings from construction (optim.run_settings_kept; load_optimizer_states unsharded)."""
    from optim import load_optimizer_states, run_settings_kept

    if not fsdp:
        return load_optimizer_states(optimizers, states)
    helpers = state_dict_helpers()[1]
    whole = helpers.StateDictOptions(full_state_dict=True)
    with run_settings_kept(optimizers):
        for opt, sd in zip(optimizers, states, strict=True):
            names = _names(model, opt)
            by_name = {"state": {names[i]: s for i, s in sd["state"].items()},
                       "param_groups": [{**g, "params": [names[i] for i in g["params"]]} for g in sd["param_groups"]]}
            helpers.set_optimizer_state_dict(model, opt, by_name, options=whole)
    unfuse(optimizers, fsdp)


# ------------------------------------------------------------------ the sharded format
# OUT_DIR/ckpt_dcp is a symlink to the newest folder OUT_DIR/ckpt_dcp-<iter>, written by every rank
# with torch.distributed.checkpoint (one file per rank, and .metadata), plus run.pt: everything
# ckpt.pt holds but the weights and the optimizer. A save writes a folder of a new name, then repoints
# the link atomically (os.replace), and only then deletes what it replaces, so a crash at any moment
# leaves the last complete checkpoint as the latest. A save at an iteration that already has a folder
# (a resume saving at its own iteration) writes ckpt_dcp-<iter>-1 (or -2, ...) beside it.

def fresh_folder(out_dir, iter_num):
    """A folder for a save at iter_num that out_dir does not hold yet: ckpt_dcp-<iter>, else -1, -2, ..."""
    base = os.path.join(out_dir, f"ckpt_dcp-{iter_num:08d}")
    folder, n = base, 0
    while os.path.lexists(folder):
        n += 1
        folder = f"{base}-{n}"
    return folder


def save_sharded(model, optimizers, run, out_dir, keep_last=0):
    """Every rank calls this. run: ckpt.pt's other entries (iter_num, config, rng, ...)."""
    rank0 = not dist.is_initialized() or dist.get_rank() == 0
    folder = [fresh_folder(out_dir, run["iter_num"]) if rank0 else None]
    if dist.is_initialized():  # every rank writes into the folder rank 0 named
        dist.broadcast_object_list(folder, src=0)
    folder = folder[0]
    dcp, helpers = state_dict_helpers()
    from torch.distributed.checkpoint.api import CheckpointException

    from checkpoint import tensor_bytes, write_failure
    state = {"model": helpers.get_model_state_dict(model),
             "optimizer": helpers.get_optimizer_state_dict(model, optimizers)}
    try:
        dcp.save(state, checkpoint_id=folder)
        if rank0:
            torch.save(run, os.path.join(folder, "run.pt"))
    except (OSError, CheckpointException) as e:  # a full disk on some rank: the link still names the last whole save
        if rank0:
            shutil.rmtree(folder, ignore_errors=True)
        failures = getattr(e, "failures", {})  # dcp's: {rank: (exception, traceback)}
        cause = next((f[0] for f in failures.values() if isinstance(f[0], OSError)), e)
        raise OSError(write_failure(folder, cause, tensor_bytes(state))) from None
    if rank0:
        link, tmp = os.path.join(out_dir, "ckpt_dcp"), os.path.join(out_dir, "ckpt_dcp.tmp")
        if os.path.lexists(tmp):
            os.remove(tmp)
        os.symlink(os.path.basename(folder), tmp)
        os.replace(tmp, link)
        # now the rest can go: all but the newest keep_last whole saves of other iterations (this one's earlier
        # folder and a crashed save's go too); only this run's: a folder of a later iteration is not from its past
        from checkpoint import kept_iter
        others = sorted(f for f in os.listdir(out_dir) if f.startswith("ckpt_dcp-") and f != os.path.basename(folder)
                        and (kept_iter(f, "ckpt_dcp-") or 0) <= run["iter_num"])
        whole = [f for f in others if int(f.split("-")[1]) != run["iter_num"]
                 and os.path.isfile(os.path.join(out_dir, f, "run.pt"))]
        for f in set(others) - set(whole[max(0, len(whole) - keep_last):]):
            shutil.rmtree(os.path.join(out_dir, f))
    if dist.is_initialized():
        dist.barrier()


def latest_sharded(out_dir):
    """The newest sharded checkpoint's folder in out_dir, or None."""
    link = os.path.join(out_dir, "ckpt_dcp")
    return os.path.realpath(link) if os.path.isfile(os.path.join(link, "run.pt")) else None


def load_resume(out_dir):
    """out_dir's newest checkpoint, for --init_from=resume: ckpt.pt (whole, memory-mapped), or the
    sharded folder's run.pt, tagged "sharded" (the weights stay on disk until load_sharded).
    Raises FileNotFoundError or RuntimeError with one line."""
    from checkpoint import load_checkpoint

    path, folder = os.path.join(out_dir, "ckpt.pt"), latest_sharded(out_dir)
    if folder and (not os.path.isfile(path) or
                   os.path.getmtime(os.path.join(folder, "run.pt")) > os.path.getmtime(path)):
        return load_run(folder)
    return load_checkpoint(path)


def load_run(folder):
    """A sharded checkpoint's run.pt (weights_only), tagged with its folder for load_sharded."""
    run = torch.load(os.path.join(folder, "run.pt"), map_location="cpu", weights_only=True)
    return {**run, "sharded": folder}


def load_sharded(model, optimizers, folder):
    """Load a sharded checkpoint into this run's model and optimizers, however many ranks saved it
    and however many load it (torch.distributed.checkpoint reshards). Every rank calls this."""
    dcp, helpers = state_dict_helpers()
    model_sd = helpers.get_model_state_dict(model)
    opt_sd = helpers.get_optimizer_state_dict(model, optimizers) if optimizers else None
    state = {"model": model_sd} if opt_sd is None else {"model": model_sd, "optimizer": opt_sd}
    dcp.load(state, checkpoint_id=folder)
    helpers.set_model_state_dict(model, state["model"])
    if optimizers:
        from optim import run_settings_kept

        with run_settings_kept(optimizers):  # this run's settings, as for ckpt.pt
            helpers.set_optimizer_state_dict(model, optimizers, state["optimizer"])


def convert(folder, path):
    """Write a sharded checkpoint as one ckpt.pt (one process, host memory): the same file a
    run that saved the full format writes, for sample.py, export.py, evaluate.py and any resume."""
    from dataclasses import fields

    from checkpoint import save_checkpoint
    from model import GPTConfig
    from optim import configure_optimizers

    run = torch.load(os.path.join(folder, "run.pt"), map_location="cpu", weights_only=True)
    known = {f.name for f in fields(GPTConfig)}
    model = GPT(GPTConfig(**{k: v for k, v in run["model_args"].items() if k in known}))
    cfg = run["config"]
    optimizers = configure_optimizers(model, cfg["weight_decay"], cfg["learning_rate"], (cfg["beta1"], cfg["beta2"]),
                                      "cpu", cfg["optimizer"], cfg["muon_lr"])
    for opt in optimizers:
        for group in opt.param_groups:
            group["initial_lr"] = group["lr"]
    load_sharded(model, optimizers, folder)
    model_sd, opt_sds = full_state(model, optimizers, fsdp=False)
    save_checkpoint({**run, "model": model_sd, "optimizer": opt_sds}, path)


if __name__ == "__main__":
    if len(sys.argv) not in (2, 3) or not os.path.isfile(os.path.join(sys.argv[1], "run.pt")):
        sys.exit("usage: python parallel.py OUT_DIR/ckpt_dcp [PATH]  (a sharded checkpoint folder; "
                 "writes PATH, by default ckpt.pt beside the folder)")
    src = os.path.realpath(sys.argv[1])
    dst = sys.argv[2] if len(sys.argv) == 3 else os.path.join(os.path.dirname(src), "ckpt.pt")
    convert(src, dst)
    print(f"wrote {dst} from {src}")
