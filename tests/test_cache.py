"""The KV cache, for every ablation flag: prefill + one-token decoding gives the full
forward's logits, and cached generation gives uncached generation's tokens, also after the
window has slid past block_size, for a batch. Rotary models' cache rolls past block_size:
for one layer that is exactly recomputing the window, for more it is sliding-window attention,
and both are checked against a reference computed here without any cache."""

import math

import pytest
import torch
import torch.nn.functional as F

from conftest import FLAG_CASES, FLAG_COMBOS
from model import GPT, GPTConfig, KVCache, apply_rope

V, BLOCK = 61, 16
TINY = dict(n_layer=2, n_head=4, n_embd=64, block_size=BLOCK, vocab_size=V, dropout=0.0)
# the flag combinations (one per model flag, and all on) are conftest's, as in test_flags.py
FLAGS, CASES = FLAG_COMBOS, FLAG_CASES


def tiny(impl, flags, **over):
    torch.manual_seed(0)
    model = GPT(GPTConfig(**dict(TINY, **over), attn_impl=impl, **flags)).eval()
    with torch.no_grad():  # random gains and biases too: an initial model hides mistakes behind ones and zeros
        for name, p in model.named_parameters():
            if p.dim() == 1:
                p.add_(torch.randn_like(p) * 0.1)
    return model


@pytest.mark.parametrize("name,impl", CASES)
def test_prefill_then_decode_equals_full_forward(name, impl):
    model = tiny(impl, FLAGS[name])
    idx = torch.randint(0, V, (3, BLOCK), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        full = model(idx)[0]  # (B, T, V)
        cache = KVCache(model.config.n_layer, BLOCK)
        parts = [model(idx[:, :5], cache=cache)[0]]  # prefill 5 tokens at once
        parts += [model(idx[:, t:t + 1], cache=cache)[0] for t in range(5, BLOCK)]  # then one at a time
    assert cache.pos == BLOCK
    assert torch.allclose(torch.cat(parts, dim=1), full, atol=1e-5)


def comparable(impl, flags):
    """A model whose cached and uncached generation agree past block_size: a rotary model's
    rolling cache equals recomputing the window only with one layer (see the tests below)."""
    return tiny(impl, flags, n_layer=1) if flags.get("use_rope") else tiny(impl, flags)


@pytest.mark.parametrize("name,impl", CASES)
def test_cached_greedy_generation_equals_uncached_past_block_size(name, impl):
    model = comparable(impl, FLAGS[name])
    prompt = torch.randint(0, V, (3, 5), generator=torch.Generator().manual_seed(2))
    new = 2 * BLOCK + 8  # the window slides 4 times (it keeps block_size // 2 tokens)
    cached = model.generate(prompt, new, temperature=0, use_cache=True)
    uncached = model.generate(prompt, new, temperature=0, use_cache=False)
    assert cached.shape == (3, 5 + new)
    assert torch.equal(cached, uncached)


@pytest.mark.parametrize("name,impl", CASES)
def test_seeded_sampling_is_the_same_with_and_without_the_cache(name, impl):
    # random models fall into greedy loops of a token or two; sampled text varies, so this
    # also compares the two paths on many different contexts
    model = comparable(impl, FLAGS[name])
    prompt = torch.randint(0, V, (2, 3), generator=torch.Generator().manual_seed(3))
    runs = [model.generate(prompt, 2 * BLOCK + 8, temperature=1.0, top_k=40, top_p=0.95, use_cache=c,
                           generator=torch.Generator().manual_seed(7)) for c in (True, False)]
    assert torch.equal(runs[0], runs[1])
    assert len(set(runs[0][:, 3:].flatten().tolist())) > 10


def test_a_long_prompt_is_cut_to_the_window():
    model = tiny("sdpa", {})
    prompt = torch.randint(0, V, (1, 2 * BLOCK), generator=torch.Generator().manual_seed(4))
    a = model.generate(prompt, 10, temperature=0, use_cache=True)
    b = model.generate(prompt[:, -BLOCK:], 10, temperature=0, use_cache=True)
    assert torch.equal(a[:, -10:], b[:, -10:])  # the model only ever sees the last block_size tokens


def test_stream_yields_what_generate_returns():
    model = tiny("sdpa", dict(use_rope=True))
    prompt = torch.randint(0, V, (2, 4), generator=torch.Generator().manual_seed(5))
    streamed = torch.cat(list(model.stream(prompt, 30, temperature=0)), dim=1)
    assert torch.equal(streamed, model.generate(prompt, 30, temperature=0)[:, 4:])


ROPE_CASES = [(name, impl) for name, impl in CASES if FLAGS[name].get("use_rope")]


def cached_logits(model, idx, prefill):
    """Logits for idx (B, N) from the cache: prefill tokens at once, then one at a time. A rotary
    model's cache rolls, on past block_size (it rebases its positions every block_size tokens)."""
    cache = KVCache(model.config.n_layer, model.config.block_size, rolling=model.config.use_rope)
    with torch.no_grad():
        parts = [model(idx[:, :prefill], cache=cache)[0]]
        parts += [model(idx[:, t:t + 1], cache=cache)[0] for t in range(prefill, idx.size(1))]
    return torch.cat(parts, dim=1)  # (B, N, V)


@pytest.mark.parametrize("name,impl", ROPE_CASES)
def test_one_layer_rolling_cache_equals_recomputing_the_last_block_size_tokens(name, impl):
    # one layer: a key depends only on its token and position, and scores on the distance, so
    # the window read afresh (positions 0..block_size-1) gives the same logits
    model = tiny(impl, FLAGS[name], n_layer=1)
    idx = torch.randint(0, V, (2, 6 * BLOCK), generator=torch.Generator().manual_seed(6))  # 5 rebases
    got = cached_logits(model, idx, prefill=5)
    with torch.no_grad():
        want = [model(idx[:, max(0, t + 1 - BLOCK):t + 1])[0][:, -1] for t in range(idx.size(1))]
    assert torch.allclose(got, torch.stack(want, dim=1), atol=1e-4)


def sliding_window_reference(model, idx):
    """Every layer's token t attends to tokens t-block_size+1..t, over the whole of idx (B, N),
    rotary positions 0..N-1 computed in float64: what a rolling cache computes, written without one."""
    cfg, N = model.config, idx.size(1)
    inv_freq = 1.0 / cfg.rope_theta ** (torch.arange(0, cfg.head_dim, 2, dtype=torch.float64) / cfg.head_dim)
    angles = torch.outer(torch.arange(N, dtype=torch.float64), inv_freq)
    cos, sin = angles.cos().float(), angles.sin().float()
    t = torch.arange(N)
    band = (t[None, :] <= t[:, None]) & (t[None, :] > t[:, None] - cfg.block_size)  # (N, N)
    x = model.transformer.wte(idx)
    for block in model.transformer.h:
        a = block.attn
        nkv = a.n_kv_head
        q, k, v = a.c_attn(block.ln_1(x)).split([cfg.n_embd, nkv * a.hs, nkv * a.hs], dim=2)
        q = apply_rope(a.q_norm(q.view(*idx.shape, cfg.n_head, a.hs).transpose(1, 2)), cos, sin)
        k = apply_rope(a.k_norm(k.view(*idx.shape, nkv, a.hs).transpose(1, 2)), cos, sin)
        v = v.view(*idx.shape, nkv, a.hs).transpose(1, 2)
        k, v = (z.repeat_interleave(cfg.n_head // nkv, dim=1) for z in (k, v))
        att = (q @ k.transpose(-2, -1) / math.sqrt(a.hs)).masked_fill(~band, float("-inf"))
        y = (F.softmax(att, dim=-1) @ v).transpose(1, 2).reshape(x.shape)
        x = x + a.c_proj(y)
        x = x + block.mlp(block.ln_2(x))
    return model.lm_head(model.transformer.ln_f(x))[..., :cfg.vocab_size]


@pytest.mark.parametrize("name,impl", ROPE_CASES)
def test_rolling_cache_is_sliding_window_attention(name, impl):
    model = tiny(impl, FLAGS[name])  # two layers
    idx = torch.randint(0, V, (2, 4 * BLOCK), generator=torch.Generator().manual_seed(8))
    with torch.no_grad():
        want = sliding_window_reference(model, idx)
        assert torch.allclose(want[:, :BLOCK], model(idx[:, :BLOCK])[0], atol=1e-5)  # the reference is right
    assert torch.allclose(cached_logits(model, idx, prefill=7), want, atol=1e-4)


def test_a_rolling_cache_refuses_a_prefill_that_would_wrap():
    model = tiny("sdpa", dict(use_rope=True))
    cache = KVCache(model.config.n_layer, BLOCK, rolling=True)
    model(torch.zeros(1, BLOCK - 2, dtype=torch.long), cache=cache)
    with pytest.raises(ValueError, match="do not fit"):
        model(torch.zeros(1, 3, dtype=torch.long), cache=cache)


@pytest.mark.slow
@pytest.mark.parametrize("name,impl", [("all", "sdpa")])  # one compile: about 15 s
def test_compiled_decoding_equals_eager(name, impl):
    """GPT.compile_decoding: the one-token step traced once by torch.compile (inductor on the CPU)
    gives the eager step's logits; for the rotary model past block_size too (rolling, rebasing)."""
    eager, compiled = tiny(impl, FLAGS[name]), tiny(impl, FLAGS[name])
    compiled.compile_decoding()
    n = 3 * BLOCK if FLAGS[name].get("use_rope") else BLOCK  # learned positions stop at block_size
    idx = torch.randint(0, V, (2, n), generator=torch.Generator().manual_seed(9))
    assert torch.allclose(cached_logits(compiled, idx, prefill=5), cached_logits(eager, idx, prefill=5), atol=1e-4)
    prompt = idx[:, :3]
    assert torch.equal(compiled.generate(prompt, 2 * BLOCK, temperature=0), eager.generate(prompt, 2 * BLOCK, temperature=0))


def test_the_buffers_are_static_inputs_of_the_compiled_step():
    """compile_decoding(mode='reduce-overhead') replays CUDA graphs, and inductor skips the graphs of a
    step that writes into its inputs unless they are marked static. So the first forward on a cache
    runs eagerly (it allocates the buffers, then marks them), and the buffers keep their addresses,
    also when a rolling cache rebases."""
    from torch._dynamo.utils import get_static_address_type

    model = tiny("sdpa", dict(use_rope=True), n_layer=1)
    compiled_calls = []

    def step(idx, cache):  # stands in for the compiled step: no compile needed to see which step runs
        compiled_calls.append(cache.pos)
        return model.cached_step(idx, cache)

    model.compiled_step = step
    idx = torch.randint(0, V, (2, 3 * BLOCK), generator=torch.Generator().manual_seed(11))
    cache = KVCache(1, BLOCK, rolling=True, static=True)  # as stream() makes it for compiled decoding
    with torch.no_grad():
        model(idx[:, :1], cache=cache)  # a one-token prompt: its forward is the first
        buffers = [t.data_ptr() for t in cache.k + cache.v]
        for t in range(1, idx.size(1)):  # past 2 * block_size: the positions rebase
            model(idx[:, t:t + 1], cache=cache)
    assert len(compiled_calls) == idx.size(1) - 1 and compiled_calls[0] == 1  # every one-token forward but the first
    assert all(get_static_address_type(t) for t in cache.k + cache.v)
    assert [t.data_ptr() for t in cache.k + cache.v] == buffers


def test_rolling_cache_bench_scores_the_same_tokens_three_ways():
    """bench/rolling_cache.py: for one layer the rolling cache and the recomputed window give the
    same loss; the half-window re-prefill sees less context, so a different one."""
    import importlib.util
    import os
    path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "bench", "rolling_cache.py")
    spec = importlib.util.spec_from_file_location("rolling_cache", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    model = tiny("sdpa", dict(use_rope=True), n_layer=1)
    ids = torch.randint(0, V, (4 * BLOCK,), generator=torch.Generator().manual_seed(10))
    window, rolling, half = (f(model, ids, BLOCK) for f in (bench.window, bench.rolling, bench.half_window))
    assert window == pytest.approx(rolling, rel=1e-5) and abs(half - window) > 1e-3
