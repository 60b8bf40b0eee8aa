"""
The LM head and its cross-entropy in tiles, never the whole logits (GPTConfig.fused_loss in
model.py, which calls linear_cross_entropy). A wide vocabulary on a narrow model makes the
(tokens, vocabulary) logits the largest tensor of a step; here they are made one tile at a time,
forward and again in backward. Figures: docs/results.md, "The LM head and its loss".

Imports only torch, as model.py does.
"""

import warnings

import torch

class LinearCrossEntropy(torch.autograd.Function):
    """The LM head and its loss in one: F.cross_entropy(x @ weight[:vocab_size].T, targets) without
    the (N, V) logits, which for a wide vocabulary on a narrow model dwarf everything else (GPT-2's
    50,304 logits for each token of a 32-wide model). The logits are made one (row_tile, vocab_tile)
    tile at a time: forward keeps each row's running log-sum-exp (N floats) and its target's
    logit, backward makes every tile again and turns it into its gradient at once. The idea of
    Cut Cross-Entropy (Wijmans et al. 2024) and Liger Kernel's fused linear cross-entropy, written
    as plain tensor ops. The products run in `dtype` (autocast's), the log-sum-exp in fp32."""

    @staticmethod
    def forward(ctx, x, weight, targets, vocab_size, ignore_index, dtype, row_tile, vocab_tile):
        N = x.size(0)
        valid = targets != ignore_index  # (N,)
        tgt = torch.where(valid, targets, 0)  # (N,) ignored rows point at token 0, and count for nothing
        # what F.cross_entropy checks: a target outside the vocabulary (a padded row too) is an error
        torch._assert_async(((tgt >= 0) & (tgt < vocab_size)).all(), f"a target is outside 0 .. {vocab_size - 1}")
        xc = x.to(dtype)  # (N, C)
        lse = torch.full((N,), float("-inf"), device=x.device)  # log-sum-exp of each row's logits so far
        picked = torch.zeros(N, device=x.device)  # each row's target logit
        for v0 in range(0, vocab_size, vocab_tile):  # only the real rows of weight: padded ones never count
            v1 = min(v0 + vocab_tile, vocab_size)
            w = weight[v0:v1].to(dtype)  # (Vt, C)
            for r0 in range(0, N, row_tile):
                r1 = min(r0 + row_tile, N)
                col, inside = tile_columns(tgt[r0:r1], v0, v1)
                step = tile_step(lse_tile, (r1 - r0, v1 - v0), x.device.type)
                lse[r0:r1], picked[r0:r1] = step(xc[r0:r1], w, lse[r0:r1], picked[r0:r1], col, inside)
        ctx.save_for_backward(x, weight, tgt, valid, lse)
        ctx.vocab_size, ctx.dtype, ctx.row_tile, ctx.vocab_tile = vocab_size, dtype, row_tile, vocab_tile
        # the mean over the counted rows: nan when none counts, as F.cross_entropy gives
        return torch.where(valid, lse - picked, 0.0).sum() / valid.sum()

    @staticmethod
    def backward(ctx, grad_loss):
        x, weight, tgt, valid, lse = ctx.saved_tensors
        dtype, row_tile, vocab_tile = ctx.dtype, ctx.row_tile, ctx.vocab_tile
        N = x.size(0)
        # d loss / d (a row's loss): |grad_loss| / (rows counted) for counted rows, 0 for ignored ones;
        # grad_loss's sign (-1 where a loss is maximised) multiplies the gradients at the end
        scale = torch.where(valid, grad_loss.abs() / valid.sum().clamp(min=1), 0.0)  # (N,)
        # softmax * scale = exp(logit - (lse - log scale)): one subtraction and one exp a tile (scale 0: exp(-inf))
        shift = lse - scale.log()  # (N,)
        xc = x.to(dtype)  # (N, C)
        grad_x = torch.zeros(x.shape, device=x.device)  # (N, C), summed over the vocabulary tiles in fp32
        grad_w = torch.zeros(weight.shape, device=x.device)  # (padded V, C): the padded rows keep their zeros
        for v0 in range(0, ctx.vocab_size, vocab_tile):
            v1 = min(v0 + vocab_tile, ctx.vocab_size)
            w = weight[v0:v1].to(dtype)  # (Vt, C)
            for r0 in range(0, N, row_tile):
                r1 = min(r0 + row_tile, N)
                col, inside = tile_columns(tgt[r0:r1], v0, v1)
                step = tile_step(grad_tile, (r1 - r0, v1 - v0), x.device.type)
                gx, gw = step(xc[r0:r1], w, shift[r0:r1], col, inside, scale[r0:r1])
                grad_x[r0:r1] += gx.float()
                grad_w[v0:v1] += gw.float()
        sign = grad_loss.sign()
        return grad_x.mul_(sign).to(x.dtype), grad_w.mul_(sign).to(weight.dtype), None, None, None, None, None, None


def lse_tile(xr, w, lse, picked, col, inside):
    """The forward's work on one tile: rows xr (R, C) against vocabulary entries w (Vt, C). Returns
    the rows' log-sum-exp (R,) with this tile's logits in, and their target logit (R,) if it is here."""
    logits = (xr @ w.t()).float()  # (R, C) x (C, Vt) -> (R, Vt)
    lse = torch.logaddexp(lse, logits.logsumexp(dim=1))
    return lse, picked + torch.where(inside, logits.gather(1, col[:, None]).squeeze(1), 0.0)


def grad_tile(xr, w, shift, col, inside, scale):
    """The backward's work on one tile: its logits again, d loss / d logits, and from them the
    tile's share of the gradients of xr (R, C) and of w (Vt, C)."""
    logits = xr @ w.t()  # (R, Vt), the forward's tile again
    g = (logits - shift[:, None]).exp_()  # softmax * scale, in fp32 (as shift is)
    g.scatter_add_(1, col[:, None], -(inside * scale)[:, None])  # minus scale at the target
    g = g.to(xr.dtype)  # d loss / d logits, (R, Vt)
    return g @ w, g.t() @ xr  # (R, Vt) x (Vt, C) -> (R, C); (Vt, R) x (R, C) -> (Vt, C)


# On a CPU the tiles' element-wise work (exp, log-sum-exp, casts), not their products, takes most of the
# time: compiled, each tile's runs in one pass, 1.6x faster at train_tiny's shape (docs/results.md). Only
# tiles of TILES' CPU shape are compiled, so each function compiles once a dtype (seconds); the ragged
# last tiles, and tiles of other sizes, run eagerly.
COMPILED_TILES = {}  # fn -> its compiled form (None once this machine failed to compile it)


def tile_step(fn, shape, device_type):
    """fn for a tile of shape (rows, vocabulary entries), or its compiled form for a CPU's full tile.
    Where this machine cannot compile (no C++ compiler), a warning, and eager from then on."""
    if device_type != "cpu" or shape != TILES["cpu"]:
        return fn
    if fn not in COMPILED_TILES:
        COMPILED_TILES[fn] = torch.compile(fn, dynamic=False)
    return compiled_or_eager(fn) if COMPILED_TILES[fn] is not None else fn


def compiled_or_eager(fn):
    def step(*args):
        try:
            return COMPILED_TILES[fn](*args)
        except Exception as e:  # the compiler's errors share no type; an error of fn itself recurs just below
            COMPILED_TILES[fn] = None
            warnings.warn(f"fused_loss: cannot compile its tiles here ({type(e).__name__}); running them eagerly")
            return fn(*args)
    return step


def tile_columns(targets, v0, v1):
    """Each target's column in the vocabulary tile [v0, v1) (clamped into it), and whether it is in it."""
    col = targets - v0
    return col.clamp(0, v1 - v0 - 1), (col >= 0) & (col < v1 - v0)


FUSED_MIN_VOCAB = 8192  # fused_loss='auto' turns it on from this vocabulary size up (GPTConfig)
# (rows, vocabulary entries) of a tile. A CPU's: 4 MB of fp32 logits, the fastest compiled (2 and 8 MB were slower). Elsewhere (GPUs;
# not measured yet) each tile op is a kernel launch, so the tiles are larger: 64 MB
TILES = {"cpu": (1024, 1024)}
OTHER_TILES = (4096, 4096)


# torch.compile would unroll the tile loops into one graph per shape: for GPT-2's vocabulary and 4,096 tokens,
# 200 tiles took 400 s to compile and ran 5x slower than eager. It stops before this instead, and resumes after
@torch.compiler.disable
def linear_cross_entropy(x, weight, targets, vocab_size, ignore_index=-1, row_tile=None, vocab_tile=None):
    """x (N, C) hidden states, weight (padded V, C) the LM head, targets (N,) -> the mean cross-entropy
    of the logits x @ weight[:vocab_size].T over the targets that are not ignore_index (fp32), as
    F.cross_entropy gives it from the whole logits, and through LinearCrossEntropy the same gradients.
    Under autocast the products run in its dtype; otherwise in the inputs'. The gradients have the
    inputs' dtypes. Tiles of row_tile x vocab_tile logits (None: TILES' for the device)."""
    device_type = x.device.type
    rows, vocab = TILES.get(device_type, OTHER_TILES)
    dtype = torch.get_autocast_dtype(device_type) if torch.is_autocast_enabled(device_type) \
        else torch.promote_types(x.dtype, weight.dtype)
    return LinearCrossEntropy.apply(x, weight, targets, vocab_size, ignore_index, dtype,
                                    row_tile or rows, vocab_tile or vocab)
