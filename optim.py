"""
How the weights move: the optimizers (configure_optimizers: AdamW, Adafactor or Muon), the
learning-rate schedule, the scaling-law learning rate, and one optimizer step (clipping, loss
scaling, clearing the gradients); and how long the rest of the schedule takes (the ETA train.py
prints).

The schedule is written once, for the run's peak learning_rate. Every parameter group follows
it as a multiplier on its own initial rate (AdamW's and Adafactor's groups start at
learning_rate, Muon's at muon_lr), so AdamW, Adafactor and Muon share one schedule and the
loop needs no case for any of them.
"""

import math
from contextlib import contextmanager

import torch


def scaling_law_lr(n_params):
    """The learning rate Kaplan et al. (2020, appendix D.6) fit to their best runs, from N, the
    parameters outside the embeddings (model.num_body_params()). It is for Adam, at their batch size."""
    return 0.003239 - 0.0001395 * math.log(n_params)


def get_lr(it, learning_rate, min_lr, warmup_iters, lr_decay_iters, use_warmup=True, use_cosine=True,
           decay_lr=True):
    """Learning rate at iteration it: linear warmup, learning_rate*(it+1)/(warmup_iters+1) (never
    0), then cosine down to min_lr at lr_decay_iters, then flat. decay_lr=False (nanoGPT's switch)
    keeps learning_rate throughout."""
    if not decay_lr:
        return learning_rate
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


def eta_seconds(iter_num, max_iters, eval_interval, step_s, eval_s):
    """Seconds left after the step that brought the count to iter_num: the steps still to take at
    step_s each, and the evaluations still to come (each multiple of eval_interval from iter_num to
    max_iters, and the last at max_iters) at eval_s each, their checkpoints included."""
    evals = max(0, max_iters // eval_interval - (iter_num - 1) // eval_interval)
    if max_iters % eval_interval and iter_num <= max_iters:
        evals += 1
    return max(0, max_iters - iter_num) * step_s + evals * eval_s


def configure_optimizers(model, weight_decay, learning_rate, betas, device_type, optimizer="adamw", muon_lr=0.02):
    """A list of torch.optim optimizers that together update every parameter of model (a GPT)
    once. Weight decay goes on matrices (dim >= 2) only, never on biases, norms or gains.
    'adamw': one AdamW. 'adafactor': one Adafactor, whose second moments of a matrix are a row
    and a column vector and which keeps no first moment (Shazeer & Stern 2018); in torch its
    learning rate caps a step relative to the weight's RMS, 1e-2 in the paper.
    'muon': Muon (Jordan et al. 2024) at muon_lr for the matrices inside the blocks, whose
    update it orthogonalises, and AdamW at learning_rate for the rest: the embeddings, the
    LM head, norms and biases, which Muon is not meant for."""
    if optimizer not in ("adamw", "adafactor", "muon"):
        raise ValueError(f"unknown optimizer {optimizer!r}; use 'adamw', 'adafactor' or 'muon'")
    params = [p for p in model.parameters() if p.requires_grad]
    hidden = {id(p) for p in model.transformer.h.parameters() if p.dim() == 2} if optimizer == "muon" else set()
    rest = [p for p in params if id(p) not in hidden]
    groups = [
        {"params": [p for p in rest if p.dim() >= 2], "weight_decay": weight_decay},
        {"params": [p for p in rest if p.dim() < 2], "weight_decay": 0.0},
    ]
    if optimizer == "adafactor":
        # torch's Adafactor updates one tensor at a time unless foreach=True (the batched kernels
        # take about one more copy of the weights at peak); on a GPU the launches cost more than that
        return [torch.optim.Adafactor(groups, lr=learning_rate, foreach=device_type == "cuda")]
    fused = device_type in ("cuda", "cpu")  # one kernel for the whole update (measured faster on CPU too)
    adamw = torch.optim.AdamW(groups, lr=learning_rate, betas=betas, fused=fused)
    if optimizer == "adamw":
        return [adamw]
    matrices = [p for p in params if id(p) in hidden]
    return [adamw, Muon(matrices, lr=muon_lr, weight_decay=weight_decay, ns_dtype=muon_dtype(device_type))]


def remember_initial_lr(optimizers):
    """Record each parameter group's own peak rate as "initial_lr" (torch's name for it). Call
    once, on optimizers just built, before loading any saved state."""
    for opt in optimizers:
        for group in opt.param_groups:
            group["initial_lr"] = group["lr"]


# The group settings a run chooses, from its keys (what a resume gives again wins) or its machine (the
# dtype Muon orthogonalises in), where torch's load_state_dict would bring back the saved run's
RUN_SETTINGS = ("initial_lr", "weight_decay", "betas", "ns_dtype")


@contextmanager
def run_settings_kept(optimizers):
    """Load saved optimizer states inside this block: the moments are the checkpoint's, and each
    group keeps the RUN_SETTINGS it was built with (checkpoints from before initial_lr have none)."""
    kept = [[{k: group[k] for k in RUN_SETTINGS if k in group} for group in opt.param_groups] for opt in optimizers]
    yield
    for opt, groups in zip(optimizers, kept):
        for group, settings in zip(opt.param_groups, groups):
            group.update(settings)


def load_optimizer_states(optimizers, states):
    """Resume: load each optimizer's saved state, keeping this run's settings (run_settings_kept)."""
    with run_settings_kept(optimizers):
        for opt, state in zip(optimizers, states, strict=True):
            opt.load_state_dict(state)


def load_scaler_state(scaler, state):
    """Resume the GradScaler. A bf16 or fp32 run saves a disabled scaler's state, which is empty,
    and an enabled (fp16) scaler refuses an empty state: it then keeps its fresh start instead."""
    if state:
        scaler.load_state_dict(state)


def apply_lr(optimizers, lr, learning_rate):
    """Set every group's rate for this step: lr, the schedule's value at peak learning_rate, scaled
    by the group's initial_lr / learning_rate. A group whose peak is learning_rate gets lr itself,
    bit for bit (in floating point lr * r / r is not always lr)."""
    for opt in optimizers:
        for group in opt.param_groups:
            peak = group["initial_lr"]
            group["lr"] = lr if peak == learning_rate else lr * peak / learning_rate


def grad_norm(params):
    """The global norm of params' gradients, a 0-d tensor (torch's get_total_norm), also for FSDP's
    sharded (DTensor) gradients: there each rank's norm covers only its shards, and full_tensor()
    reduces them to the global norm, the same on every rank."""
    total = torch.nn.utils.get_total_norm([p.grad for p in params])
    return total.full_tensor() if hasattr(total, "full_tensor") else total


def optimizer_step(optimizers, scaler, model, grad_clip):
    """Unscale the gradients (fp16), clip their global norm to grad_clip (0: no clipping), step
    every optimizer, then clear the gradients. Returns False, having stepped none, when the norm
    is not finite: one NaN or inf gradient anywhere would reach every weight through the clipping,
    and under fp16 an overflow in one optimizer's gradients (AdamW's, with Muon) skips them all.
    The scaler still updates, so an fp16 overflow lowers its scale as usual."""
    for opt in optimizers:
        scaler.unscale_(opt)  # clip and check the true gradients, not the loss-scaled ones (fp32, bf16: no-op)
    params = [p for p in model.parameters() if p.grad is not None]
    norm = grad_norm(params)
    finite = bool(torch.isfinite(norm))  # a sync point, like the loss's; the same verdict on every rank
    if finite:
        if grad_clip != 0.0:
            torch.nn.utils.clip_grads_with_norm_(params, grad_clip, norm)
        for opt in optimizers:
            scaler.step(opt)
    scaler.update()
    for opt in optimizers:
        opt.zero_grad(set_to_none=True)
    return finite


def _item(t):
    """A 0-d tensor's number; a DTensor's (a norm over every rank's shards) is reduced first."""
    return (t.full_tensor() if hasattr(t, "full_tensor") else t).item()


@torch.no_grad()
def adafactor_out_of_place(opt):
    """One step of torch's single-tensor Adafactor (torch/optim/_adafactor.py, the same math, op for
    op) for every parameter of opt, a torch.optim.Adafactor, with out-of-place ops: on FSDP2's
    sharded (DTensor) parameters DTensor then does the reductions itself, so a column's statistics
    cover all of its rows on every rank, as in one process. torch's in-place ops on the partial
    norms are what DTensor refuses. The state keeps torch's names, shapes and placements."""
    for group in opt.param_groups:
        params, grads, row_vars, col_vars, variances, steps = [], [], [], [], [], []
        opt._init_group(group, params, grads, row_vars, col_vars, variances, steps)
        lr, wd, d, beta2_decay = float(group["lr"]), group["weight_decay"], group["d"], group["beta2_decay"]
        for param, grad, row_var, col_var, variance, step_t in zip(params, grads, row_vars, col_vars, variances,
                                                                   steps):
            grad = -grad if group["maximize"] else grad
            eps1, eps2 = group["eps"]
            eps1 = torch.finfo(param.dtype).eps if eps1 is None else eps1
            step_t += 1
            step = step_t.item()
            one_minus_beta2_t = step ** beta2_decay
            rho_t = min(lr, 1 / (step ** 0.5))
            alpha = max(eps2, _item(param.norm(2)) / (param.numel() ** 0.5)) * rho_t
            if wd != 0:
                param.mul_(1 - lr * wd)
            if grad.dim() > 1:
                row_mean = torch.norm(grad, dim=-1, keepdim=True).square().div(grad.size(-1))
                row_var.copy_(row_var.lerp(row_mean, one_minus_beta2_t))
                col_mean = torch.norm(grad, dim=-2, keepdim=True).square().div(grad.size(-2))
                col_var.copy_(col_var.lerp(col_mean, one_minus_beta2_t))
                # torch keeps the factors replicated; the row factor sharded as the gradient keeps
                # row_var @ col_var a shard of the matrix, not a whole one on every rank
                rows = row_var.redistribute(grad.device_mesh, grad.placements) if hasattr(grad, "placements") \
                    else row_var
                var_estimate = (rows @ col_var).div(row_var.mean(dim=-2, keepdim=True).clamp(min=eps1))
            else:
                variance.copy_(variance.lerp(grad * grad, one_minus_beta2_t))
                var_estimate = variance
            update = var_estimate.clamp(min=eps1 * eps1).rsqrt().mul(grad)
            denom = max(1.0, _item(update.norm(2)) / ((update.numel() ** 0.5) * d))
            param.add_(update, alpha=-alpha / denom)


class ShardedAdafactor(torch.optim.Adafactor):
    """torch's Adafactor, also for FSDP2's sharded (DTensor) parameters (torch 2.13's own step
    writes in place into DTensor norms, which DTensor refuses): those take adafactor_out_of_place,
    plain tensors torch's own step. The same state, so checkpoints are torch's Adafactor's."""

    @torch.no_grad()
    def step(self, closure=None):
        if not any(hasattr(p, "full_tensor") for group in self.param_groups for p in group["params"]):
            return super().step(closure)
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        adafactor_out_of_place(self)
        return loss


# Newton-Schulz quintic coefficients from Keller Jordan's Muon (Jordan et al. 2024), as torch's Muon:
# chosen for the steepest slope at zero, so 5 steps push every singular value into about [0.7, 1.2]
NS_COEFFICIENTS = (3.4445, -4.7750, 2.0315)


def newton_schulz(G, steps=5, dtype=torch.float32, eps=1e-7):
    """An approximate orthogonalisation of each matrix in G (..., m, n): U V^T of its SVD U S V^T,
    with the singular values pushed towards 1 by `steps` quintic Newton-Schulz iterations, computed
    in `dtype` (bf16 only where the hardware multiplies it; elsewhere fp32 is the fast one)."""
    a, b, c = NS_COEFFICIENTS
    X = G.to(dtype)
    tall = X.size(-2) > X.size(-1)
    if tall:  # iterate on the wide side: X X^T is the smaller Gram matrix
        X = X.mT
    X = X / X.norm(dim=(-2, -1), keepdim=True).clamp(min=eps)  # Frobenius >= spectral: singular values <= 1
    for _ in range(steps):
        A = X @ X.mT  # (..., m, m)
        X = a * X + (b * A + c * A @ A) @ X  # each singular value s -> a s + b s^3 + c s^5
    return X.mT if tall else X


def muon_dtype(device_type):
    """The dtype Muon orthogonalises in, by name: bf16 on a GPU or a CPU with bf16 units (the test
    dtype='auto' makes: device.cuda_has_bf16, cpu_has_bf16), else fp32. torch's Muon always uses bf16,
    which a V100, a T4 or a CPU without bf16 units emulates: on an AVX2 AMD EPYC its orthogonalisation
    took 375 ms of a 434 ms step of the CPU speedrun's model."""
    from device import cpu_has_bf16, cuda_has_bf16
    return "bfloat16" if (device_type == "cuda" and cuda_has_bf16()) or (device_type == "cpu" and cpu_has_bf16()) \
        else "float32"


class Muon(torch.optim.Optimizer):
    """Muon (Jordan et al. 2024) for 2-D weight matrices: Nesterov momentum, then the update is
    orthogonalised (newton_schulz) in ns_dtype, scaled by sqrt(max(1, rows/cols)), with decoupled
    weight decay: torch.optim.Muon's math and state ("momentum_buffer"), with two differences.
    The dtype is chosen (muon_dtype), and matrices of one shape are orthogonalised together, as one
    batch of matrix products instead of one small product each."""

    def __init__(self, params, lr=0.02, momentum=0.95, nesterov=True, weight_decay=0.0, ns_steps=5,
                 ns_dtype="float32"):  # a name, not a torch.dtype: the groups go into checkpoints
        super().__init__(params, dict(lr=lr, momentum=momentum, nesterov=nesterov, weight_decay=weight_decay,
                                      ns_steps=ns_steps, ns_dtype=ns_dtype))

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            lr, m = group["lr"], group["momentum"]
            by_shape = {}  # shape -> [(param, update before orthogonalising)]
            for p in group["params"]:
                if p.grad is None:
                    continue
                if p.grad.dim() != 2:
                    raise ValueError(f"Muon updates 2-D matrices only, got a gradient of shape {tuple(p.grad.shape)}")
                state = self.state[p]
                if "momentum_buffer" not in state:
                    state["momentum_buffer"] = torch.zeros_like(p.grad)
                buf = state["momentum_buffer"]
                buf.lerp_(p.grad, 1 - m)  # an average of past gradients
                by_shape.setdefault(p.shape, []).append((p, p.grad.lerp(buf, m) if group["nesterov"] else buf))
            for (rows, cols), pairs in by_shape.items():
                ortho = newton_schulz(torch.stack([u for _, u in pairs]), group["ns_steps"],
                                       getattr(torch, group["ns_dtype"]))
                for (p, _), o in zip(pairs, ortho):  # o: (rows, cols)
                    p.mul_(1 - lr * group["weight_decay"])
                    p.add_(o.to(p.dtype), alpha=-lr * math.sqrt(max(1.0, rows / cols)))
        return loss
