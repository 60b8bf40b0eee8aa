"""The KV cache, for every ablation flag: prefill + one-token decoding gives the full
forward's logits, and cached generation gives uncached generation's tokens, also after the
window has slid past block_size, for a batch."""

import pytest
import torch

from conftest import FLAG_CASES, FLAG_COMBOS
from model import GPT, GPTConfig, KVCache

V, BLOCK = 61, 16
TINY = dict(n_layer=2, n_head=4, n_embd=64, block_size=BLOCK, vocab_size=V, dropout=0.0)
# the flag combinations (one per model flag, and all on) are conftest's, as in test_flags.py
FLAGS, CASES = FLAG_COMBOS, FLAG_CASES


def tiny(impl, flags):
    torch.manual_seed(0)
    model = GPT(GPTConfig(**TINY, attn_impl=impl, **flags)).eval()
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


@pytest.mark.parametrize("name,impl", CASES)
def test_cached_greedy_generation_equals_uncached_past_block_size(name, impl):
    model = tiny(impl, FLAGS[name])
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
    model = tiny(impl, FLAGS[name])
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
