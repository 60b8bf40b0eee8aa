"""Every ablation flag: the GPT-2 layout with all off, training, causality, RoPE's relative
positions, RMSNorm's formula, SwiGLU's width rule, the learning-rate schedule, and a
checkpoint with every flag on that train.py resumes and sample.py samples from."""

import json
import math
import os

import pytest
import torch
import torch.nn.functional as F

from conftest import FLAG_CASES, FLAG_COMBOS, in_process, run
from model import GPT, GPTConfig, LayerNorm, RMSNorm, apply_rope, rope_tables
from checkpoint import load_checkpoint
from optim import get_lr

V = 97
TINY = dict(n_layer=2, n_head=4, n_embd=64, block_size=32, vocab_size=V, dropout=0.0)
# the flag combinations (one per model flag, and all on) are conftest's, as in test_cache.py
COMBOS, CASES = FLAG_COMBOS, FLAG_CASES


def tiny(seed=0, **kw):
    torch.manual_seed(seed)
    return GPT(GPTConfig(**{**TINY, **kw}))


def test_all_off_is_gpt2_parameter_for_parameter():
    from transformers import GPT2Config, GPT2LMHeadModel

    hf = GPT2LMHeadModel(GPT2Config(vocab_size=V, n_positions=32, n_embd=64, n_layer=2, n_head=4))
    conv1d = ("c_attn.weight", "c_proj.weight", "c_fc.weight")  # stored (in, out) by Hugging Face
    want = {k: tuple(v.shape[::-1]) if k.endswith(conv1d) else tuple(v.shape) for k, v in hf.state_dict().items()
            if not k.endswith((".attn.bias", ".attn.masked_bias"))}  # causal-mask buffers, not parameters
    ours = {k: tuple(v.shape) for k, v in tiny().state_dict().items()}
    assert ours == want
    assert sum(p.numel() for p in tiny().parameters()) == sum(p.numel() for p in hf.parameters())


@pytest.mark.parametrize("name,impl", CASES)
def test_flag_trains_with_finite_gradients(name, impl):
    m = tiny(attn_impl=impl, **COMBOS[name])
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, V, (4, 32), generator=g)
    y = torch.roll(x, -1, dims=1)  # a learnable rule: predict the next token of a fixed batch
    opt = torch.optim.AdamW(m.parameters(), lr=3e-3)
    losses = []
    for _ in range(8):
        _, loss = m(x, y)
        opt.zero_grad()
        loss.backward()
        assert all(torch.isfinite(p.grad).all() for p in m.parameters() if p.grad is not None)
        assert any(p.grad.abs().sum() > 0 for p in m.parameters() if p.grad is not None)
        opt.step()
        losses.append(loss.item())
    assert abs(losses[0] - math.log(V)) < 0.15  # near-uniform predictions at init
    assert losses[-1] < losses[0] - 0.1


@pytest.mark.parametrize("name,impl", CASES)
def test_flag_is_causal_and_saves_exactly(name, impl):
    m = tiny(attn_impl=impl, **COMBOS[name]).eval()
    idx = torch.randint(0, V, (2, 24))
    t = 13
    changed = idx.clone()
    changed[:, t] = (changed[:, t] + 1) % V
    a, b = m(idx)[0], m(changed)[0]
    assert torch.allclose(a[:, :t], b[:, :t], atol=1e-6)  # the past never sees the future
    assert not torch.allclose(a[:, t:], b[:, t:])  # but position t on does change
    copy = tiny(seed=1, attn_impl=impl, **COMBOS[name]).eval()
    copy.load_state_dict(m.state_dict())
    assert torch.equal(copy(idx)[0], a)  # the state dict is the whole model (no unsaved state)


def test_sdpa_equals_manual_for_every_flag():
    for name, kw in COMBOS.items():
        if kw.get("attention") == "synthesizer":
            continue
        m1, m2 = tiny(attn_impl="sdpa", **kw).eval(), tiny(attn_impl="manual", **kw).eval()
        m2.load_state_dict(m1.state_dict())
        idx = torch.randint(0, V, (2, 32))
        assert torch.allclose(m1(idx)[0], m2(idx)[0], atol=1e-5), name


def test_invalid_combinations_fail_at_config_time():
    bad = [dict(attention="synthesizer"),  # attn_impl defaults to sdpa
           dict(attention="synthesizer", attn_impl="manual", use_rope=True),
           dict(attention="synthesizer", attn_impl="manual", use_qk_norm=True),
           dict(attention="synthesizer", attn_impl="manual", n_kv_head=2),
           dict(use_swiglu=True, use_relu2=True), dict(n_kv_head=3), dict(use_rope=True, n_head=64, n_embd=64 * 3)]
    for kw in bad:
        with pytest.raises(ValueError):
            GPTConfig(**{**TINY, **kw})


def test_rope_scores_depend_only_on_relative_position():
    hs, T = 16, 40
    cos, sin = rope_tables(hs, 2 * T, 10000.0)
    q, k = torch.randn(hs), torch.randn(hs)
    # the same query and key content at every position: scores differ only by where they sit
    Q = apply_rope(q.expand(1, 1, 2 * T, hs), cos, sin)[0, 0]  # (2T, hs)
    K = apply_rope(k.expand(1, 1, 2 * T, hs), cos, sin)[0, 0]
    S = Q @ K.T  # (2T, 2T): S[m, n] = score of query at m against key at n
    for shift in (1, 7, 33):
        assert torch.allclose(S[:T, :T], S[shift:shift + T, shift:shift + T], atol=1e-4)
    assert not torch.allclose(S[10, 10], S[10, 3], atol=1e-3)  # and the offset itself matters
    assert torch.allclose(S.diagonal(), (q @ k).expand(2 * T), atol=1e-4)  # offset 0 is the plain dot product


def test_rope_attention_is_shift_invariant_and_has_no_position_table():
    m = tiny(use_rope=True, block_size=64).eval()
    assert "transformer.wpe.weight" not in m.state_dict() and not hasattr(m.transformer, "wpe")
    attn = m.transformer.h[0].attn
    x = torch.randn(2, 20, 64)
    cos, sin = m.rope_cos, m.rope_sin
    y0 = attn(x, (cos[0:20], sin[0:20]))
    for s in (5, 44):  # the whole sequence moved s positions later
        assert torch.allclose(y0, attn(x, (cos[s:s + 20], sin[s:s + 20])), atol=1e-5)
    assert not torch.allclose(y0, attn(x.flip(1), (cos[0:20], sin[0:20])).flip(1), atol=1e-3)  # order still matters


def test_rmsnorm_is_its_formula_and_replaces_every_norm():
    torch.manual_seed(0)
    norm = RMSNorm(64, True, 1e-5)
    norm.weight.data = torch.randn(64)
    x = torch.randn(3, 5, 64) * 4 + 1
    want = x / torch.sqrt(x.pow(2).mean(-1, keepdim=True) + 1e-5) * norm.weight
    assert torch.allclose(norm(x), want, atol=1e-5)
    assert [n for n, _ in norm.named_parameters()] == ["weight"]  # a learned scale, no bias
    m = tiny(use_rmsnorm=True)
    assert sum(isinstance(mod, RMSNorm) for mod in m.modules()) == 2 * 2 + 1  # ln_1, ln_2 per layer, ln_f
    assert not any(isinstance(mod, LayerNorm) for mod in m.modules())


def mlp_params(m):
    return sum(p.numel() for p in m.transformer.h[0].mlp.parameters())


@pytest.mark.parametrize("C", [64, 128, 768])
def test_swiglu_width_rule_keeps_the_parameter_count(C):
    cfg = dict(n_layer=1, n_head=4, n_embd=C, block_size=8, vocab_size=V, bias=False)
    gelu, swiglu = mlp_params(GPT(GPTConfig(**cfg))), mlp_params(GPT(GPTConfig(**cfg, use_swiglu=True)))
    hidden = int(8 * C / 3)  # the stated rule: 2/3 of 4*n_embd
    assert gelu == 8 * C * C and swiglu == 3 * C * hidden
    assert abs(swiglu - gelu) / gelu < 0.01
    assert mlp_params(GPT(GPTConfig(**cfg, use_swiglu=True, mlp_hidden=100))) == 3 * C * 100  # the override


def test_swiglu_computes_gate_times_up():
    m = tiny(use_swiglu=True, bias=False)
    mlp = m.transformer.h[0].mlp
    x = torch.randn(2, 3, 64)
    h = mlp.c_proj.in_features
    w_gate, w_up = mlp.c_fc.weight[:h], mlp.c_fc.weight[h:]
    assert torch.allclose(mlp(x), mlp.c_proj(F.silu(x @ w_gate.T) * (x @ w_up.T)), atol=1e-6)


def test_lr_schedule_at_the_documented_points():
    kw = dict(learning_rate=1e-3, min_lr=1e-4, warmup_iters=100, lr_decay_iters=1100)
    both = lambda it: get_lr(it, **kw)  # noqa: E731
    assert both(0) == pytest.approx(1e-3 / 101)  # warmup starts low, not at 0
    assert both(49) == pytest.approx(1e-3 * 50 / 101)  # mid-warmup: linear
    assert both(100) == pytest.approx(1e-3)  # end of warmup: the peak
    assert both(600) == pytest.approx(5.5e-4)  # mid-decay: halfway between peak and min_lr
    assert both(1100) == both(5000) == pytest.approx(1e-4)  # after lr_decay_iters: min_lr, flat
    assert get_lr(0, **kw, use_warmup=False) == pytest.approx(1e-3)  # no warmup: full rate from step 0
    assert get_lr(550, **kw, use_warmup=False) == pytest.approx(5.5e-4)  # cosine over the whole run
    assert get_lr(49, **kw, use_cosine=False) == both(49)  # warmup still applies without cosine
    assert get_lr(600, **kw, use_cosine=False) == get_lr(5000, **kw, use_cosine=False) == 1e-3
    assert all(get_lr(it, **kw, use_warmup=False, use_cosine=False) == 1e-3 for it in (0, 600, 5000))


@pytest.mark.slow
def test_every_flag_on_trains_resumes_and_samples(char_data, tmp_path):
    out = str(tmp_path / "all")
    flags = ["--use_swiglu=True", "--use_rope=True", "--use_rmsnorm=True", "--use_warmup=True", "--use_cosine=True",
             "--use_qk_norm=True", "--tie_embeddings=False", "--bias=False", "--n_kv_head=1"]
    common = [f"--data_dir={char_data}", f"--out_dir={out}", "--device=cpu", "--dtype=float32", "--n_layer=2", "--n_head=2",
              "--n_embd=32", "--block_size=32", "--batch_size=8", "--gradient_accumulation_steps=1",
              "--eval_iters=4", "--eval_interval=10", "--log_interval=1", "--learning_rate=3e-3",
              "--warmup_iters=4", "--lr_decay_iters=20", "--min_lr=3e-4"]
    run("train.py", *common, *flags, "--max_iters=10")
    run("train.py", *common, "--max_iters=20", "--init_from=resume")  # the flags come from the checkpoint
    model_args = load_checkpoint(os.path.join(out, "ckpt.pt"))["model_args"]
    cfg = json.load(open(os.path.join(out, "config.json")))
    for f in flags:
        key, value = f[2:].split("=")
        want = {"True": True, "False": False}.get(value, value if not value.isdigit() else int(value))
        if key in model_args:  # a model flag: in the checkpoint and in config.json's model_args
            assert model_args[key] == cfg["model_args"][key] == want, key
        else:  # a schedule flag: in config.json's config, restored from the checkpoint on resume
            assert cfg["config"][key] == want, key
    with open(os.path.join(out, "log.jsonl")) as f:
        steps = [r for r in map(json.loads, f) if "train_loss" in r]
    assert [r["iter"] for r in steps] == list(range(1, 21))  # the resumed run went on from step 10
    assert all(r["lr"] == pytest.approx(get_lr(r["iter"] - 1, 3e-3, 3e-4, 4, 20)) for r in steps)
    printed = in_process("sample.py", f"--out_dir={out}", "--num_samples=2", "--max_new_tokens=60", "--start=ROMEO:",
                         "--device=cpu")
    samples = [x for x in printed.split("---------------\n") if x.strip()]
    assert len(samples) == 2 and all(x.startswith("ROMEO:") and len(x) >= 66 for x in samples)


@pytest.mark.slow
def test_resume_keeps_the_schedule_flags(char_data, tmp_path):
    out = str(tmp_path / "constant")
    common = [f"--data_dir={char_data}", f"--out_dir={out}", "--device=cpu", "--dtype=float32", "--n_layer=1", "--n_head=2",
              "--n_embd=32", "--block_size=32", "--batch_size=4", "--eval_iters=2", "--eval_interval=5",
              "--log_interval=1", "--learning_rate=1e-3", "--warmup_iters=10", "--lr_decay_iters=10"]
    run("train.py", *common, "--use_warmup=False", "--use_cosine=False", "--max_iters=5")
    run("train.py", *common, "--max_iters=10", "--init_from=resume")  # train.py's defaults would be True, True
    with open(os.path.join(out, "log.jsonl")) as f:
        lrs = [r["lr"] for r in map(json.loads, f) if "train_loss" in r]
    assert lrs == [1e-3] * 10  # constant all the way: the resumed half did not switch warmup and cosine on


@pytest.mark.slow
def test_synthesizer_with_sdpa_is_a_one_line_error(char_data, tmp_path):
    p = run("train.py", f"--data_dir={char_data}", f"--out_dir={tmp_path}", "--device=cpu",
            "--attention=synthesizer", check=False)
    assert p.returncode != 0 and p.stderr.strip().splitlines() == [
        "error: attention='synthesizer' computes its own attention weights, so it needs --attn_impl=manual"]
