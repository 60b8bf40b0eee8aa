"""The LM head's loss in tiles (fused_loss.linear_cross_entropy, GPTConfig.fused_loss) against the whole logits
and F.cross_entropy: the loss and both gradients in fp32 and under bf16 autocast, ignored and padded
entries, uneven tiles, never a whole (N, V) tensor; then in the GPT: tied and untied heads, the auto rule,
return_logits, activation checkpointing, torch.compile, and DDP and FSDP on 2 gloo ranks (this file is
also their worker: python -m torch.distributed.run ... tests/test_fused_loss.py MODE)."""

import os
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from conftest import run  # noqa: E402
from fused_loss import FUSED_MIN_VOCAB, linear_cross_entropy  # noqa: E402
from model import GPT, GPTConfig  # noqa: E402


def inputs(N=200, C=48, V=300, padded=320, ignored=5, seed=0):
    """Hidden states (N, C), a head (padded, C) whose padded rows would win every softmax were they
    counted, and targets (N,) with every `ignored`-th one -1."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(N, C, generator=g).requires_grad_()
    w = torch.randn(padded, C, generator=g) * 0.3
    w[V:] = 5.0
    t = torch.randint(0, V, (N,), generator=g)
    if ignored:
        t[::ignored] = -1
    return x, w.requires_grad_(), t


def reference(x, w, t, V, bf16=False):
    """GPT's plain path: the whole logits, cut to V, F.cross_entropy in fp32. (loss, grad x, grad w)."""
    with torch.autocast("cpu", torch.bfloat16, enabled=bf16):
        loss = F.cross_entropy(F.linear(x, w)[:, :V].float(), t, ignore_index=-1)
    return (loss, *torch.autograd.grad(loss, (x, w)))


def fused(x, w, t, V, bf16=False, **tiles):
    with torch.autocast("cpu", torch.bfloat16, enabled=bf16):
        loss = linear_cross_entropy(x, w, t, V, **tiles)
    return (loss, *torch.autograd.grad(loss, (x, w)))


@pytest.mark.parametrize("N, V, padded, row_tile, vocab_tile", [
    (200, 300, 320, 64, 96),  # uneven edges both ways (200 = 3 x 64 + 8, 300 = 3 x 96 + 12), padded rows
    (200, 300, 300, 512, 1024),  # one tile, larger than the whole
    (37, 11, 64, 5, 3),  # many small tiles, most of the head padded
    (64, 256, 256, 16, 64),  # even tiles
])
def test_equals_cross_entropy_in_fp32(N, V, padded, row_tile, vocab_tile):
    x, w, t = inputs(N=N, V=V, padded=padded)
    want = reference(x, w, t, V)
    got = fused(x, w, t, V, row_tile=row_tile, vocab_tile=vocab_tile)
    assert got[0].dtype == torch.float32 and abs(got[0].item() - want[0].item()) < 1e-5
    assert torch.allclose(got[1], want[1], atol=1e-7, rtol=1e-5)  # the hidden states' gradient
    assert torch.allclose(got[2], want[2], atol=1e-7, rtol=1e-5)  # the head's
    assert got[2][V:].abs().sum() == 0  # the padded rows get nothing


class Recorder(TorchDispatchMode):
    """Every op's outputs as it runs: the largest tensor made, and the dtypes each matrix product took."""

    def __init__(self):
        super().__init__()
        self.numel, self.mm_dtypes = 0, set()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if func in (torch.ops.aten.mm.default, torch.ops.aten.addmm.default):
            self.mm_dtypes.add(tuple(a.dtype for a in args if isinstance(a, torch.Tensor)))
        for o in out if isinstance(out, (tuple, list)) else [out]:
            if isinstance(o, torch.Tensor):
                self.numel = max(self.numel, o.numel())
        return out


@pytest.mark.parametrize("bf16", [False, True])
def test_products_run_in_the_autocast_dtype_forward_and_backward(bf16):
    x, w, t = inputs()
    with Recorder() as rec:
        got = fused(x, w, t, 300, bf16=bf16, row_tile=64, vocab_tile=96)
    want = torch.bfloat16 if bf16 else torch.float32
    assert rec.mm_dtypes == {(want, want)}  # forward's tiles, backward's tiles and its two gradient products
    assert all(g.dtype == torch.float32 for g in got)  # the loss, and gradients in the parameters' dtype


def test_bf16_autocast_gives_the_loss_and_gradients_of_the_bf16_logits():
    """Under autocast the loss is the one the bf16 logits give, to the last bit of fp32 here, and
    further from the fp32 logits' than that: the products ran in bf16, the log-sum-exp in fp32."""
    x, w, t = inputs()
    want, want32 = reference(x, w, t, 300, bf16=True), reference(x, w, t, 300)
    got = fused(x, w, t, 300, bf16=True, row_tile=64, vocab_tile=96)
    assert abs(got[0].item() - want[0].item()) < 1e-5 < abs(got[0].item() - want32[0].item())
    for g, r in zip(got[1:], want[1:]):
        assert g.dtype == torch.float32 and torch.allclose(g, r, atol=0.02 * r.abs().max().item(), rtol=0)
    assert got[2][300:].abs().sum() == 0


@pytest.mark.parametrize("factor", [-2.0, 0.0, 1e-3])  # a loss maximised, a loss left out, a small weight
def test_any_gradient_of_the_loss(factor):
    x, w, t = inputs()
    ref = F.cross_entropy(F.linear(x, w)[:, :300], t, ignore_index=-1)
    got = linear_cross_entropy(x, w, t, 300, row_tile=64, vocab_tile=96)
    for a, b in zip(torch.autograd.grad(factor * ref, (x, w)), torch.autograd.grad(factor * got, (x, w))):
        assert torch.allclose(a, b, atol=1e-7 * max(abs(factor), 1e-3), rtol=1e-5)


def test_every_target_ignored_gives_nan_and_zero_gradients_as_cross_entropy():
    x, w, _ = inputs()
    t = torch.full((200,), -1)
    want, got = reference(x, w, t, 300), fused(x, w, t, 300, row_tile=64, vocab_tile=96)
    assert torch.isnan(want[0]) and torch.isnan(got[0])
    assert (got[1] == 0).all() and (got[2] == 0).all() and (want[1] == 0).all() and (want[2] == 0).all()


@pytest.mark.parametrize("bad", [300, 310, -2])  # the first padded row, another padded row, a negative id
def test_a_target_outside_the_vocabulary_is_an_error(bad):
    x, w, t = inputs()
    t[7] = bad
    with pytest.raises((IndexError, RuntimeError)):
        reference(x, w, t, 300)
    with pytest.raises(RuntimeError, match="outside 0 .. 299"):
        fused(x, w, t, 300)


def test_no_tensor_as_large_as_the_logits():
    """Forward and backward make nothing of N x V elements: the largest tensor is the head's gradient."""
    N, C, V = 512, 16, 2048
    x, w, t = inputs(N=N, C=C, V=V, padded=V)
    with Recorder() as rec:
        fused(x, w, t, V, row_tile=64, vocab_tile=128)
    assert rec.numel == V * C and 64 * 128 < V * C < N * V  # every tile is smaller
    with Recorder() as rec:
        reference(x, w, t, V)
    assert rec.numel == N * V  # the test can tell


# ---------------------------------------------------------------------------------- in the GPT

def gpt(fused_loss, **kw):
    torch.manual_seed(0)
    cfg = dict(n_layer=2, n_head=2, n_embd=32, block_size=32, vocab_size=100, pad_vocab=True, dropout=0.0)
    return GPT(GPTConfig(**{**cfg, **kw, "fused_loss": fused_loss}))


def batch(V=100, B=4, T=32):
    g = torch.Generator().manual_seed(1)
    x, y = torch.randint(0, V, (B, T), generator=g), torch.randint(0, V, (B, T), generator=g)
    y[:, :6] = -1  # a question's targets, not scored
    return x, y


def loss_and_grads(model, x, y, step=None, **kw):
    """(logits, loss, {name: gradient}) of one forward and backward (through step, if given: a compiled model)."""
    logits, loss = (model if step is None else step)(x, y, **kw)
    loss.backward()
    return logits, loss.item(), {n: p.grad for n, p in model.named_parameters()}


def assert_same(a, b, atol=1e-6):
    assert abs(a[1] - b[1]) < 1e-5
    assert a[2].keys() == b[2].keys()
    for n in a[2]:
        assert torch.allclose(a[2][n], b[2][n], atol=atol, rtol=1e-5), (n, (a[2][n] - b[2][n]).abs().max())


@pytest.mark.parametrize("tie", [True, False])
def test_gpt_fused_on_equals_off(tie):
    """The same loss and the same gradient for every parameter, the tied or untied head and the
    token embedding included; the padded rows of the head get none; no logits come back."""
    x, y = batch()
    off = loss_and_grads(gpt("off", tie_embeddings=tie), x, y)
    on = loss_and_grads(m := gpt("on", tie_embeddings=tie), x, y)
    assert off[0].shape == (4, 32, 100) and on[0] is None
    assert_same(off, on)
    assert m.lm_head.weight.shape[0] == 128 and m.lm_head.weight.grad[100:].abs().sum() == 0
    with torch.no_grad():  # evaluation (estimate_loss) takes the same path
        assert abs(m(x, y)[1].item() - off[1]) < 1e-5


def test_return_logits_gives_the_logits_and_the_same_loss():
    x, y = batch()
    m = gpt("on")
    logits, loss = m(x, y, return_logits=True)
    assert logits.shape == (4, 32, 100)
    assert abs(loss.item() - F.cross_entropy(logits.reshape(-1, 100), y.reshape(-1), ignore_index=-1).item()) < 1e-6
    assert abs(loss.item() - m(x, y)[1].item()) < 1e-5
    assert m(x)[0].shape == (4, 32, 100)  # without targets: logits, as ever


def test_auto_is_on_for_wide_vocabularies_only_and_a_bad_value_is_a_sentence():
    assert not gpt("auto").fused_loss and gpt("on").fused_loss and not gpt("off", vocab_size=50257).fused_loss
    assert not GPT(GPTConfig(n_layer=1, n_head=2, n_embd=8, vocab_size=FUSED_MIN_VOCAB - 1)).fused_loss
    assert GPT(GPTConfig(n_layer=1, n_head=2, n_embd=8, vocab_size=FUSED_MIN_VOCAB)).fused_loss
    with pytest.raises(ValueError, match="fused_loss must be 'auto', 'on' or 'off'"):
        GPTConfig(fused_loss="True")


def test_activation_checkpointing_gives_the_same_gradients():
    from parallel import checkpoint_activations

    x, y = batch()
    m, plain = gpt("on", dropout=0.1), gpt("off", dropout=0.1)
    checkpoint_activations(m)
    torch.manual_seed(2)  # the same dropout masks, drawn again in the recompute
    got = loss_and_grads(m, x, y)
    torch.manual_seed(2)
    assert_same(loss_and_grads(plain, x, y), got)


def test_a_quantized_head_takes_the_plain_path():
    from quantize import quantize_model

    x, y = batch()
    m = quantize_model(gpt("on").eval(), "int8")
    logits, loss = m(x, y)
    assert logits.shape == (4, 32, 100) and torch.isfinite(loss)


@pytest.mark.slow
def test_compiled_model_equals_eager():
    """torch.compile stops before linear_cross_entropy (its tile loops would unroll) and resumes after:
    the compiled model's loss and gradients are the eager ones with the whole logits."""
    x, y = batch()
    m = gpt("on")
    got = loss_and_grads(m, x, y, step=torch.compile(m))
    assert got[0] is None
    assert_same(loss_and_grads(gpt("off"), x, y), got, atol=1e-5)


@pytest.mark.slow
def test_bench_times_both_and_they_agree():
    p = run("bench.py", "--mode=head", "--real_data=False", "--device=cpu", "--dtype=float32", "--n_head=2",
            "--n_embd=16", "--vocab_size=1000", "--batch_size=4", "--block_size=32", "--num_steps=2",
            "--warmup_steps=1")
    rows = {line.split("|")[1].strip(): line.split("|")[2:5] for line in p.stdout.splitlines()
            if line.startswith(("| full", "| fused"))}
    assert rows.keys() == {"full", "fused"} and "128 tokens, n_embd 16, vocab 1,000 (1,024 rows)" in p.stdout
    assert abs(float(rows["full"][2]) - float(rows["fused"][2])) < 1e-5  # the same loss from both
    assert all(float(v) >= 0 for v in rows["full"][:2] + rows["fused"][:2])


# --------------------------------------------------------------------- DDP and FSDP, 2 gloo ranks

@pytest.mark.slow
@pytest.mark.parametrize("mode", ["ddp", "fsdp", "fsdp_bf16"])
def test_two_ranks_fused_equal_the_whole_logits(mode):
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    p = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                        os.path.abspath(__file__), mode], cwd=ROOT, capture_output=True, text=True, timeout=300,
                       env=env)
    assert p.returncode == 0 and "same gradients" in p.stdout, f"{p.stdout[-3000:]}\n{p.stderr[-3000:]}"


def two_ranks(mode):
    """Each rank takes half the batch through a fused model under DDP or FSDP (parallel.build_model);
    the gradients, gathered, must be one process's with the whole logits on the whole batch (no target
    is ignored, so the mean of the two halves' means is the whole batch's mean). FSDP in bf16 (weights
    gathered in bf16: the head's products in bf16 without autocast) against FSDP in bf16 with the whole
    logits, to bf16's precision."""
    import torch.distributed as dist

    from parallel import build_model, wrap_ddp

    dist.init_process_group("gloo")
    rank = dist.get_rank()
    x, y = batch()
    y[:, :6] = x[:, :6]
    half = slice(2 * rank, 2 * rank + 2)
    dtype = "bfloat16" if mode == "fsdp_bf16" else "float32"

    def grads(fused_loss, parallel):
        torch.manual_seed(0)  # rank 0 (FSDP) or every rank (DDP) builds the same init as one process
        model = build_model(gpt(fused_loss).config, None, "cpu", dtype, fsdp=parallel == "fsdp")
        step = wrap_ddp(model, "cpu") if parallel == "ddp" else model
        logits, loss = step(*((x[half], y[half]) if parallel else (x, y)))
        assert (logits is None) == (fused_loss == "on")
        loss.backward()
        return {n: p.grad.full_tensor() if hasattr(p.grad, "full_tensor") else p.grad
                for n, p in model.named_parameters()}

    parallel = mode.split("_")[0]
    got, want = grads("on", parallel), grads("off", None if dtype == "float32" else parallel)
    for n, g in got.items():
        atol = 1e-6 if dtype == "float32" else 0.02 * want[n].abs().max().item()
        assert torch.allclose(g.float(), want[n].float(), atol=atol, rtol=1e-5), (n, (g - want[n]).abs().max())
    if rank == 0:
        print(f"{mode}: same gradients")
    dist.destroy_process_group()


if __name__ == "__main__":
    two_ranks(sys.argv[1])


@pytest.mark.slow
def test_compiled_cpu_tiles_equal_the_eager_ones(monkeypatch):
    """Full tiles of the CPU's shape run compiled (one pass over each tile's element-wise work); the
    ragged ones eagerly. Both give F.cross_entropy's loss and gradients; with the compiler out of
    reach, a warning and the same numbers."""
    import fused_loss
    x, w, t = inputs(N=1100, C=16, V=2100, padded=2112, ignored=7)  # 1 full row tile + 76 rows; 2 full vocab tiles + 52
    for bf16, tol in ((False, 1e-5), (True, 2e-2)):
        want = reference(x, w, t, 2100, bf16)
        got = fused(x, w, t, 2100, bf16)
        assert abs(got[0].item() - want[0].item()) < tol * 10
        assert torch.allclose(got[1], want[1], atol=tol * 1e-2, rtol=tol) and torch.allclose(got[2], want[2], atol=tol * 1e-2, rtol=tol)
    assert all(callable(f) for f in fused_loss.COMPILED_TILES.values()) and len(fused_loss.COMPILED_TILES) == 2

    def broken(fn, **kw):
        def fail(*a):
            raise RuntimeError("no compiler")
        return fail
    monkeypatch.setattr(fused_loss, "COMPILED_TILES", {})
    monkeypatch.setattr(torch, "compile", broken)
    with pytest.warns(UserWarning, match="cannot compile its tiles"):
        again = fused(x, w, t, 2100)
    assert torch.equal(again[1], fused(x, w, t, 2100)[1]) and set(fused_loss.COMPILED_TILES.values()) == {None}
