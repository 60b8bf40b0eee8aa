import math

import pytest
import torch
from torch.nn import functional as F

from model import GPT, GPTConfig, KVCache, sample_next
from optim import configure_optimizers

TINY = dict(n_layer=2, n_head=4, n_embd=64, block_size=32, vocab_size=97, dropout=0.0)


def tiny(**kw):
    torch.manual_seed(0)
    return GPT(GPTConfig(**{**TINY, **kw})).eval()


def test_shapes_and_initial_loss():
    m = tiny()
    idx, targets = torch.randint(0, 97, (3, 16)), torch.randint(0, 97, (3, 16))
    logits, loss = m(idx, targets)
    assert logits.shape == (3, 16, 97)
    assert abs(loss.item() - math.log(97)) < 0.1  # near-uniform predictions at init
    assert m(idx)[1] is None


@pytest.mark.parametrize("impl", ["sdpa", "manual"])
def test_causal(impl):
    m = tiny(attn_impl=impl)
    idx = torch.randint(0, 97, (2, 20))
    t = 11
    changed = idx.clone()
    changed[:, t] = (changed[:, t] + 1) % 97
    a, b = m(idx)[0], m(changed)[0]
    assert torch.allclose(a[:, :t], b[:, :t], atol=1e-6)  # the past never sees the future
    assert not torch.allclose(a[:, t], b[:, t])  # but position t itself does change


def test_manual_equals_sdpa():
    m1, m2 = tiny(attn_impl="sdpa"), tiny(attn_impl="manual")
    m2.load_state_dict(m1.state_dict())
    idx = torch.randint(0, 97, (4, 32))
    assert torch.allclose(m1(idx)[0], m2(idx)[0], atol=1e-5)


def test_gpt2_layout_and_tied_head():
    m = tiny()
    sd = m.state_dict()
    L, C, V, T = 2, 64, 97, 32
    expect = {"transformer.wte.weight": (V, C), "transformer.wpe.weight": (T, C), "lm_head.weight": (V, C),
              "transformer.ln_f.weight": (C,), "transformer.ln_f.bias": (C,)}
    for i in range(L):
        p = f"transformer.h.{i}."
        expect.update({p + "ln_1.weight": (C,), p + "ln_1.bias": (C,), p + "ln_2.weight": (C,), p + "ln_2.bias": (C,),
                       p + "attn.c_attn.weight": (3 * C, C), p + "attn.c_attn.bias": (3 * C,),
                       p + "attn.c_proj.weight": (C, C), p + "attn.c_proj.bias": (C,),
                       p + "mlp.c_fc.weight": (4 * C, C), p + "mlp.c_fc.bias": (4 * C,),
                       p + "mlp.c_proj.weight": (C, 4 * C), p + "mlp.c_proj.bias": (C,)})
    assert {k: tuple(v.shape) for k, v in sd.items()} == expect
    assert m.lm_head.weight is m.transformer.wte.weight


def test_init_scales_residual_projections():
    m = GPT(GPTConfig(n_layer=8, n_head=4, n_embd=256, block_size=32, vocab_size=97))
    std = m.transformer.h[0].attn.c_proj.weight.std().item()
    assert abs(std - 0.02 / math.sqrt(16)) < 0.001
    assert abs(m.transformer.h[0].mlp.c_fc.weight.std().item() - 0.02) < 0.001


def test_num_params_excludes_positions():
    m = tiny()
    total = sum(p.numel() for p in m.parameters())
    assert m.num_params(non_embedding=False) == total
    assert m.num_params() == total - 32 * 64


def test_optimizer_decays_only_matrices():
    m = tiny()
    [opt] = configure_optimizers(m, 0.1, 1e-3, (0.9, 0.95), "cpu")
    decay, no_decay = opt.param_groups
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    assert all(p.dim() >= 2 for p in decay["params"]) and all(p.dim() < 2 for p in no_decay["params"])
    assert sum(p.numel() for g in opt.param_groups for p in g["params"]) == m.num_params(non_embedding=False)


def test_estimate_mfu():
    m = tiny()
    assert m.estimate_mfu(1000, 1.0, 0) is None
    assert m.estimate_mfu(1000, 1.0, 1e12) == pytest.approx(m.flops_per_token() * 1000 / 1e12)
    assert m.achieved_flops(1000, 0.5, world_size=2) == pytest.approx(m.flops_per_token() * 1000)  # per device, no peak


def test_flops_per_token_counts_no_lookup():
    """The input embedding is a lookup: untied, it adds parameters but no matmul FLOPs, so MFU and
    train_flops are the same as tied (the head's 6 V C is counted either way)."""
    tied, untied = tiny(), tiny(tie_embeddings=False)
    V, C = tied.config.padded_vocab, tied.config.n_embd
    assert untied.num_params() - tied.num_params() == V * C  # one more matrix to store
    assert untied.flops_per_token() == tied.flops_per_token()  # and no more work per token
    assert untied.estimate_mfu(1000, 1.0, 1e12) == tied.estimate_mfu(1000, 1.0, 1e12)


def test_invalid_config_is_a_clear_error():
    with pytest.raises(ValueError, match="divisible"):
        GPTConfig(n_embd=65, n_head=4)
    with pytest.raises(ValueError, match="attn_impl"):
        GPTConfig(attn_impl="flash")


def test_block_size_enforced():
    m = tiny()
    with pytest.raises(ValueError, match="block_size"):
        m(torch.zeros(1, 33, dtype=torch.long))


def test_generate_greedy_cached_equals_uncached_past_block():
    m = tiny()
    idx = torch.randint(0, 97, (2, 5))
    a = m.generate(idx, 70, temperature=0, use_cache=True)  # 75 tokens > block_size 32: the window slides
    b = m.generate(idx, 70, temperature=0, use_cache=False)
    assert a.shape == (2, 75) and torch.equal(a, b)


def test_prefill_plus_decode_equals_full_forward():
    m = tiny()
    idx = torch.randint(0, 97, (2, 24))
    full = m(idx)[0]
    cache = KVCache(2, 32)
    parts = [m(idx[:, :10], cache=cache)[0]] + [m(idx[:, t:t + 1], cache=cache)[0] for t in range(10, 24)]
    assert cache.pos == 24
    assert torch.allclose(full, torch.cat(parts, dim=1), atol=1e-5)


def test_sampling_top_k_top_p_and_seed():
    logits = torch.tensor([[5.0, 4.0, 1.0, 0.0, -1.0]])
    for _ in range(20):
        assert sample_next(logits, 1.0, top_k=2).item() in (0, 1)
        assert sample_next(logits, 1.0, top_p=0.5).item() == 0  # token 0 alone holds > 50%
    m = tiny()
    idx = torch.zeros(1, 1, dtype=torch.long)
    g = lambda: torch.Generator().manual_seed(7)  # noqa: E731
    assert torch.equal(m.generate(idx, 10, generator=g()), m.generate(idx, 10, generator=g()))


@pytest.mark.parametrize("kw", [dict(top_k=2), dict(top_p=0.9)])
def test_an_excluded_token_never_wins_even_where_the_noise_is_zero(monkeypatch, kw):
    """sample_next draws argmax(p / E), E ~ Exp(1). Some backends' exponential_ (MPS, reportedly)
    return exact zeros: an excluded token's 0 / 0 is NaN, and argmax takes a NaN."""
    logits = torch.tensor([[-3.0, 2.0, 1.5, 0.5]])  # token 0 is outside the top 2 and the top 90%

    def zero_at_token_0(self, generator=None):  # the draw where the excluded token's noise is 0
        return self.copy_(torch.tensor([[0.0, 0.5, 0.9, 0.7]]))

    monkeypatch.setattr(torch.Tensor, "exponential_", zero_at_token_0)
    assert sample_next(logits, 1.0, **kw).item() == 1  # 0.7 / 0.5 beats the rest
    monkeypatch.setattr(torch.Tensor, "exponential_", lambda self, generator=None: self.zero_())
    assert sample_next(logits, 1.0, **kw).item() != 0  # all zero: still one the filter kept


def test_generate_stops_at_eos():
    m = tiny()
    bias = torch.zeros(97)
    bias[5] = 100.0  # make token 5 (our "end of text") overwhelmingly likely
    m.lm_head.register_forward_hook(lambda mod, inp, out: out + bias)
    out = m.generate(torch.zeros(2, 3, dtype=torch.long), 20, eos_token=5)
    assert out.shape == (2, 4) and (out[:, -1] == 5).all()


def test_cpu_bf16_autocast_takes_the_hand_written_attention(monkeypatch):
    """On a CPU, torch's fused attention runs 2.5-5x slower in bf16 than in fp32, so under bf16
    autocast an attn_impl='sdpa' model computes attention by hand: the manual model's numbers exactly."""
    torch.manual_seed(0)
    cfg = dict(n_layer=2, n_head=4, n_embd=64, block_size=32, vocab_size=97, dropout=0.0)
    sdpa, manual = GPT(GPTConfig(**cfg)), GPT(GPTConfig(**cfg, attn_impl="manual"))
    manual.load_state_dict(sdpa.state_dict())
    x = torch.randint(0, 97, (2, 16))
    calls = []
    fused = F.scaled_dot_product_attention
    monkeypatch.setattr(F, "scaled_dot_product_attention", lambda *a, **k: calls.append(1) or fused(*a, **k))
    with torch.autocast("cpu", torch.bfloat16):
        a, b = sdpa(x, x)[1], manual(x, x)[1]
    assert not calls and torch.equal(a, b)
    a.backward()
    b.backward()
    assert all(torch.equal(p.grad, q.grad) for p, q in zip(sdpa.parameters(), manual.parameters()))
    sdpa(x)  # fp32: the fused kernel
    assert calls
