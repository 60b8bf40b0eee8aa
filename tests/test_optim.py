"""Faster to a given loss: the three optimizers (each resumes exactly), learning_rate='auto',
the padded vocabulary, the metrics log and plot.py, and target_val_loss."""

import json
import math
import os

import pytest
import torch
import torch.nn.functional as F

import plot
from conftest import copy_run, exit_message, quietly, run
from model import GPT, GPTConfig
from checkpoint import read_log
from checkpoint import load_checkpoint, model_from_checkpoint
from optim import Muon, configure_optimizers, muon_dtype, newton_schulz, optimizer_step, scaling_law_lr

TINY = ["--device=cpu", "--dtype=float32", "--n_layer=2", "--n_head=2", "--n_embd=32", "--block_size=32", "--batch_size=8",
        "--gradient_accumulation_steps=1", "--eval_iters=2", "--log_interval=1", "--warmup_iters=2", "--compile=False"]


def train(char_data, out, *extra, check=True):
    return run("train.py", f"--data_dir={char_data}", f"--out_dir={out}", *TINY, *extra, check=check)


# ------------------------------------------------------------------------- optimizers

@pytest.mark.slow
@pytest.mark.parametrize("optimizer", ["adamw", "adafactor", "muon"])
def test_each_optimizer_trains_and_resumes_exactly(char_data, tmp_path, optimizer):
    """8 steps in one run, or 4 and then a resume to 8: the same losses and weights, bit for
    bit, with dropout on (so the random states must come along too)."""
    a, b = str(tmp_path / "a"), str(tmp_path / "b")
    lr = 5e-2 if optimizer == "adafactor" else 1e-2  # Adafactor's rate is relative to the weights' RMS (0.02 here)
    common = [f"--optimizer={optimizer}", f"--learning_rate={lr}", "--eval_interval=4", "--always_save_checkpoint=True",
              "--dropout=0.1"]
    train(char_data, a, "--max_iters=8", *common)
    train(char_data, b, "--max_iters=4", *common)
    # only the out_dir and the new end: data, model, optimizer, batch and schedule settings come from the checkpoint
    p = run("train.py", f"--out_dir={b}", "--init_from=resume", "--max_iters=8")
    assert "iter 5:" in p.stdout and "iter 1:" not in p.stdout  # continued from iteration 4
    steps_a, steps_b = read_log(os.path.join(a, "log.jsonl"))[0], read_log(os.path.join(b, "log.jsonl"))[0]
    assert [s["train_loss"] for s in steps_a] == [s["train_loss"] for s in steps_b]
    assert [s["iter"] for s in steps_b] == list(range(1, 9))
    assert steps_a[-1]["train_loss"] < steps_a[0]["train_loss"] - 0.2  # it did train
    ca, cb = load_checkpoint(os.path.join(a, "ckpt.pt")), load_checkpoint(os.path.join(b, "ckpt.pt"))
    assert ca["config"]["optimizer"] == cb["config"]["optimizer"] == optimizer
    assert all(torch.equal(ca["model"][k], cb["model"][k]) for k in ca["model"])
    assert len(ca["optimizer"]) == len(cb["optimizer"]) == (2 if optimizer == "muon" else 1)
    for sa, sb in zip(ca["optimizer"], cb["optimizer"]):  # every moment and step count, bit for bit
        assert sa["state"].keys() == sb["state"].keys()
        for i in sa["state"]:
            assert all(torch.equal(torch.as_tensor(v), torch.as_tensor(sb["state"][i][k])) for k, v in sa["state"][i].items())
    if optimizer == "muon":  # the schedule scales muon_lr as it scales learning_rate
        adamw_lr, muon_lr = ca["optimizer"][0]["param_groups"][0]["lr"], ca["optimizer"][1]["param_groups"][0]["lr"]
        assert muon_lr == pytest.approx(adamw_lr * 0.02 / lr)


@pytest.mark.slow
@pytest.mark.parametrize("optimizer", ["adamw", "adafactor", "muon"])
def test_a_resume_takes_the_optimizer_settings_given_again(char_data, tmp_path, optimizer):
    """weight_decay, beta1 and beta2 given again on a resume win over the saved param groups, and
    Muon orthogonalises in the dtype this machine's muon_dtype picks, not the saving machine's."""
    out = str(tmp_path / "r")
    path = os.path.join(out, "ckpt.pt")
    train(char_data, out, f"--optimizer={optimizer}", "--max_iters=2", "--eval_interval=2", "--weight_decay=0.1")
    if optimizer == "muon":  # as if saved on a machine that orthogonalises in the other dtype
        ckpt = torch.load(path, weights_only=True)
        ckpt["optimizer"][1]["param_groups"][0]["ns_dtype"] = {"float32": "bfloat16"}.get(muon_dtype("cpu"), "float32")
        torch.save(ckpt, path)
    run("train.py", f"--out_dir={out}", "--init_from=resume", "--max_iters=3", "--weight_decay=0.05", "--beta1=0.8",
        "--beta2=0.9")
    groups = [g for sd in load_checkpoint(path)["optimizer"] for g in sd["param_groups"]]
    assert sorted({g["weight_decay"] for g in groups}) == [0.0, 0.05]  # the decayed groups' rate; the rest stay 0
    with_betas = [g["betas"] for g in groups if "betas" in g]  # Adafactor has none
    assert len(with_betas) == (0 if optimizer == "adafactor" else 2) and all(b == (0.8, 0.9) for b in with_betas)
    if optimizer == "muon":
        assert groups[-1]["ns_dtype"] == muon_dtype("cpu")
    assert json.load(open(os.path.join(out, "config.json")))["config"]["weight_decay"] == 0.05


@pytest.mark.slow
def test_resume_refuses_another_optimizer(char_data, char_run, tmp_path):
    out = copy_run(char_run, tmp_path / "r")  # an adamw run
    p = run("train.py", f"--out_dir={out}", "--init_from=resume", "--optimizer=muon", check=False)
    assert p.returncode != 0 and p.stderr.strip().splitlines() == [
        "error: cannot resume with --optimizer=muon: the checkpoint holds adamw's state; "
        "drop --optimizer or start a new --out_dir"]
    p = train(char_data, tmp_path / "new", "--optimizer=sgd", check=False)
    assert p.returncode != 0 and "use 'adamw', 'adafactor' or 'muon'" in p.stderr and "Traceback" not in p.stderr


def test_muon_takes_the_block_matrices_and_adamw_the_rest():
    torch.manual_seed(0)
    m = GPT(GPTConfig(n_layer=2, n_head=2, n_embd=32, block_size=16, vocab_size=65, tie_embeddings=False))
    adamw, muon = configure_optimizers(m, 0.1, 1e-3, (0.9, 0.95), "cpu", "muon", muon_lr=0.05)
    assert isinstance(adamw, torch.optim.AdamW) and isinstance(muon, Muon)
    name = {id(p): n for n, p in m.named_parameters()}
    in_muon = {name[id(p)] for g in muon.param_groups for p in g["params"]}
    in_adamw = {name[id(p)] for g in adamw.param_groups for p in g["params"]}
    assert in_muon == {n for n, p in m.named_parameters() if n.startswith("transformer.h.") and p.dim() == 2}
    assert in_muon.isdisjoint(in_adamw) and in_muon | in_adamw == set(name.values())  # each parameter once
    assert {"transformer.wte.weight", "lm_head.weight", "transformer.wpe.weight"} <= in_adamw
    assert muon.param_groups[0]["lr"] == 0.05 and adamw.param_groups[0]["lr"] == 1e-3
    [ada] = configure_optimizers(m, 0.1, 1e-2, (0.9, 0.95), "cpu", "adafactor")
    assert isinstance(ada, torch.optim.Adafactor)


@pytest.mark.parametrize("shape", [(48, 16), (16, 48), (32, 32)])
def test_newton_schulz_orthogonalises_each_matrix_of_a_batch(shape):
    G = torch.randn(3, *shape, generator=torch.Generator().manual_seed(0))
    O = newton_schulz(G)
    s, sg = torch.linalg.svdvals(O), torch.linalg.svdvals(G)  # (3, min(shape)) each
    assert (sg.max(-1).values / sg.min(-1).values).min() > 2  # G's singular values spread widely
    assert s.max() < 1.3 and s.median() > 0.7  # O's near 1 (5 steps leave the very smallest behind)
    U, _, Vh = torch.linalg.svd(G, full_matrices=False)
    cos = (O * (U @ Vh)).sum(dim=(-2, -1)) / (O.norm(dim=(-2, -1)) * min(shape) ** 0.5)
    assert cos.min() > 0.95  # and in the direction of U V^T
    assert torch.allclose(torch.stack([newton_schulz(g) for g in G]), O, atol=1e-5)  # batched = one by one


def test_muon_orthogonalises_in_fp32_on_a_cpu_without_bf16_units(monkeypatch):
    for amx, want in ((False, "float32"), (True, "bfloat16")):
        monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx)
        monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)
        assert muon_dtype("cpu") == want
        m = GPT(GPTConfig(n_layer=1, n_head=2, n_embd=16, block_size=8, vocab_size=11))
        assert configure_optimizers(m, 0.1, 1e-3, (0.9, 0.95), "cpu", "muon")[1].param_groups[0]["ns_dtype"] == want
    assert muon_dtype("mps") == "float32"


def test_muon_orthogonalises_in_bf16_only_on_gpus_that_have_bf16_units(monkeypatch):
    # a V100 or T4: torch's is_bf16_supported() says True there only counting emulation
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: including_emulation)
    assert muon_dtype("cuda") == "float32"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: True)  # Ampere and later
    assert muon_dtype("cuda") == "bfloat16"


def muon_model_with_grads(scale):
    """A tiny GPT, its [AdamW, Muon], and every parameter a finite gradient times scale."""
    torch.manual_seed(0)
    m = GPT(GPTConfig(n_layer=1, n_head=2, n_embd=16, block_size=8, vocab_size=11))
    opts = configure_optimizers(m, 0.1, 1e-2, (0.9, 0.95), "cpu", "muon")
    for p in m.parameters():
        p.grad = torch.randn_like(p) * scale
    return m, opts


@pytest.mark.parametrize("grad_clip", [1.0, 0.0])
def test_an_fp16_overflow_anywhere_skips_every_optimizers_step(grad_clip):
    """fp16 with Muon: only AdamW's gradients (the tied embedding and head) overflow. Clipping by the
    NaN global norm would turn Muon's finite gradients into NaN weights, and without clipping Muon
    would step alone. Every optimizer skips, the scaler backs off, and the next step is a step."""
    m, opts = muon_model_with_grads(1024.0)
    scaler = torch.amp.GradScaler("cpu", init_scale=1024.0)
    scaler.scale(torch.ones(()))  # the scale starts at the first loss it scales; the gradients are made by hand
    before = {n: p.detach().clone() for n, p in m.named_parameters()}
    m.lm_head.weight.grad[0, 0] = float("inf")
    assert not optimizer_step(opts, scaler, m, grad_clip)
    assert all(torch.equal(p, before[n]) for n, p in m.named_parameters())  # Muon's matrices too
    assert scaler.get_scale() == 512.0 and all(p.grad is None for p in m.parameters())
    for p in m.parameters():
        p.grad = torch.randn_like(p) * 512.0
    assert optimizer_step(opts, scaler, m, grad_clip)
    assert all(torch.isfinite(p).all() and not torch.equal(p, before[n]) for n, p in m.named_parameters())
    assert scaler.get_scale() == 512.0


def test_a_nonfinite_gradient_norm_steps_no_optimizer():
    """bf16 or fp32 (no scaler): a finite loss can still bring a NaN gradient, which clipping
    would spread to every weight. No optimizer steps, and train.py counts it as a non-finite step."""
    m, opts = muon_model_with_grads(1.0)
    before = {n: p.detach().clone() for n, p in m.named_parameters()}
    m.transformer.h[0].mlp.c_fc.weight.grad[0, 0] = float("nan")
    assert not optimizer_step(opts, torch.amp.GradScaler("cpu", enabled=False), m, 1.0)
    assert all(torch.equal(p, before[n]) for n, p in m.named_parameters())
    assert all(p.grad is None for p in m.parameters())


def test_our_muon_takes_torchs_muon_steps(monkeypatch):
    """The same update as torch.optim.Muon (Nesterov momentum, the sqrt(max(1, rows/cols)) scale,
    decoupled weight decay), with torch's orthogonalisation swapped for ours in fp32 for both;
    ours batches the same-shaped matrices. Then the two orthogonalisations in bf16 agree."""
    import torch.optim._muon as torch_muon
    monkeypatch.setattr(torch_muon, "_zeropower_via_newtonschulz", lambda g, *a: newton_schulz(g))
    torch.manual_seed(0)
    mats = [torch.randn(24, 8), torch.randn(8, 24), torch.randn(24, 8)]
    ours, theirs = [m.clone().requires_grad_() for m in mats], [m.clone().requires_grad_() for m in mats]
    opt_ours = Muon(ours, lr=0.05, weight_decay=0.1, ns_dtype="float32")
    opt_theirs = torch.optim.Muon(theirs, lr=0.05, weight_decay=0.1)
    for step in range(4):
        grads = [torch.randn(m.shape, generator=torch.Generator().manual_seed(10 * step + i)) for i, m in enumerate(mats)]
        for params, opt in ((ours, opt_ours), (theirs, opt_theirs)):
            for p, g in zip(params, grads):
                p.grad = g.clone()
            opt.step()
    for a, b, m in zip(ours, theirs, mats):
        assert not torch.allclose(a, m, atol=1e-2)  # they moved
        assert torch.allclose(a, b, atol=1e-6)
    assert torch.equal(opt_ours.state[ours[1]]["momentum_buffer"], opt_theirs.state[theirs[1]]["momentum_buffer"])
    monkeypatch.undo()
    g = torch.randn(24, 8)
    bf16 = newton_schulz(g, dtype=torch.bfloat16).float()
    torchs = torch_muon._zeropower_via_newtonschulz(g, (3.4445, -4.7750, 2.0315), 5, 1e-7).float()
    for other in (torchs, newton_schulz(g)):  # bf16 rounds each of the 15 products: the same direction
        assert F.cosine_similarity(bf16.flatten(), other.flatten(), dim=0) > 0.99


# ---------------------------------------------------------------- learning_rate='auto'

def test_scaling_law_lr_and_its_N():
    # Kaplan et al.: N = 85M non-embedding parameters (GPT-2 small) -> about 6.9e-4
    assert scaling_law_lr(85e6) == pytest.approx(0.003239 - 0.0001395 * math.log(85e6))
    assert scaling_law_lr(85e6) == pytest.approx(6.92e-4, abs=1e-6)
    # N counts the blocks and the final norm: 12 L C^2 for the matrices, plus the norm gains (no biases)
    m = GPT(GPTConfig(n_layer=2, n_head=2, n_embd=32, block_size=16, vocab_size=65, bias=False, pad_vocab=True))
    L, C = 2, 32
    assert m.num_body_params() == 12 * L * C * C + 2 * L * C + C


def test_bench_takes_learning_rate_auto():
    """bench.py --learning_rate=auto resolves the rate from the model it builds, as train.py does."""
    args = dict(n_layer=2, n_head=2, n_embd=32, block_size=16, vocab_size=65)
    p = run("bench.py", "--real_data=False", "--device=cpu", "--dtype=float32", "--batch_size=2",
            "--gradient_accumulation_steps=1", "--num_steps=1", "--warmup_steps=0", "--learning_rate=auto",
            *[f"--{k}={v}" for k, v in args.items()], check=False)
    assert p.returncode == 0, p.stderr[-2000:]
    lr = scaling_law_lr(GPT(GPTConfig(**args)).num_body_params())
    assert f"lr {lr:.3g}," in p.stdout


# ------------------------------------------------------------------- padded vocabulary

def test_padded_entries_are_never_sampled_and_never_scored():
    torch.manual_seed(0)
    V = 65
    padded = GPT(GPTConfig(n_layer=1, n_head=2, n_embd=32, block_size=16, vocab_size=V, pad_vocab=True))
    plain = GPT(GPTConfig(n_layer=1, n_head=2, n_embd=32, block_size=16, vocab_size=V, pad_vocab=False))
    assert padded.transformer.wte.weight.shape == padded.lm_head.weight.shape == (128, 32)
    sd = {k: v[:V] if k in ("transformer.wte.weight", "lm_head.weight") else v for k, v in padded.state_dict().items()}
    plain.load_state_dict(sd)
    with torch.no_grad():
        padded.lm_head.weight[V:] = 50.0  # padded logits that would win every draw, were they drawn
    idx, y = torch.randint(0, V, (4, 16)), torch.randint(0, V, (4, 16))
    logits, loss = padded(idx, y)
    assert logits.shape == (4, 16, V)
    _, plain_loss = plain(idx, y)
    assert loss.item() == pytest.approx(plain_loss.item(), abs=1e-6)  # the padded logits take no probability
    assert loss.item() == pytest.approx(F.cross_entropy(logits.reshape(-1, V), y.reshape(-1)).item())
    loss.backward()
    assert padded.lm_head.weight.grad[V:].abs().sum() == 0  # nothing reaches the padded rows
    with pytest.raises((IndexError, RuntimeError)):  # and no target may point at them
        padded(idx, torch.full_like(y, V))
    out = padded.generate(torch.zeros(8, 1, dtype=torch.long), 40, temperature=2.0, top_k=None,
                          generator=torch.Generator().manual_seed(0))
    assert out.max() < V


@pytest.mark.slow
def test_a_checkpoint_from_before_pad_vocab_still_loads_and_resumes(char_data, tmp_path):
    out = str(tmp_path / "old")
    train(char_data, out, "--max_iters=2", "--eval_interval=2", "--pad_vocab=False")
    path = os.path.join(out, "ckpt.pt")
    ckpt = torch.load(path, weights_only=True)
    del ckpt["model_args"]["pad_vocab"], ckpt["config"]["pad_vocab"], ckpt["config"]["optimizer"]
    ckpt["optimizer"] = ckpt["optimizer"][0]  # the old layout: one AdamW state, not a list
    torch.save(ckpt, path)
    model = model_from_checkpoint(load_checkpoint(path))
    vocab = json.load(open(os.path.join(char_data, "meta.json")))["vocab_size"]
    assert model.config.pad_vocab is False and model.lm_head.weight.shape[0] == vocab and vocab % 64 != 0
    p = run("train.py", f"--out_dir={out}", "--init_from=resume", "--max_iters=4")  # train.py's default is True
    assert "iter 3:" in p.stdout
    assert load_checkpoint(path)["model_args"]["pad_vocab"] is False


# ------------------------------------------------- metrics log, plot.py, target_val_loss

@pytest.mark.slow
def test_metrics_log_plots_and_auto_lr(char_data, tmp_path):
    out = str(tmp_path / "m")
    p = train(char_data, out, "--max_iters=6", "--eval_interval=3", "--log_interval=2", "--learning_rate=auto")
    cfg = json.load(open(os.path.join(out, "config.json")))
    model = GPT(GPTConfig(**cfg["model_args"]))
    lr = scaling_law_lr(model.num_body_params())
    assert cfg["config"]["learning_rate"] == lr and f"learning_rate=auto: {lr:.3e}" in p.stdout
    assert load_checkpoint(os.path.join(out, "ckpt.pt"))["config"]["learning_rate"] == lr
    records = [json.loads(line) for line in open(os.path.join(out, "log.jsonl"))]  # each line one JSON object
    steps, evals, summaries = read_log(os.path.join(out, "log.jsonl"))
    assert len(records) == len(steps) + len(evals) + len(summaries)
    assert [s["iter"] for s in steps] == [2, 4, 6] and [e["iter"] for e in evals] == [0, 3, 6]
    tokens_per_iter = 8 * 32
    for s in steps:
        assert set(s) == {"iter", "tokens", "train_loss", "lr", "dt_ms", "tok_per_s", "mfu", "tflops",
                          "elapsed_s", "progress", "eta_s"}
        assert s["tokens"] == s["iter"] * tokens_per_iter and s["mfu"] is None  # no known peak on a CPU
        assert s["tok_per_s"] == pytest.approx(tokens_per_iter / (s["dt_ms"] / 1000))
    for e in evals:
        assert set(e) == {"iter", "tokens", "val_loss", "val_ppl", "train_loss_eval", "lr", "elapsed_s"}
    times = [r["elapsed_s"] for r in records if "elapsed_s" in r]
    assert times == sorted(times)
    [summary] = summaries
    assert summary["tokens"] == 6 * tokens_per_iter and summary["wall_s"] >= times[-1]
    assert summary["train_flops"] == model.flops_per_token() * 6 * tokens_per_iter
    assert summary["best_val"] == min(e["val_loss"] for e in evals) and summary["reached_target"] is False

    run("plot.py", out)
    other = str(tmp_path / "two")
    quietly(plot.main, [out, out, f"--to={other}"])
    for png in [os.path.join(out, "nll.png"), os.path.join(out, "nll_time.png"), os.path.join(other, "nll.png")]:
        data = open(png, "rb").read()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 1000
    exit_message(plot.main, [str(tmp_path / "nothing")])


@pytest.mark.slow
def test_target_val_loss_stops_at_the_first_evaluation_under_it(char_data, tmp_path):
    full = str(tmp_path / "full")
    train(char_data, full, "--max_iters=12", "--eval_interval=2", "--learning_rate=1e-2", "--always_save_checkpoint=False")
    evals = read_log(os.path.join(full, "log.jsonl"))[1]
    target = evals[3]["val_loss"]  # the loss at iter 6: some earlier evaluation may already be under it
    first = next(e["iter"] for e in evals if e["val_loss"] <= target)
    assert 0 < first < 12
    out = str(tmp_path / "target")
    p = train(char_data, out, "--max_iters=12", "--eval_interval=2", "--learning_rate=1e-2",
              "--always_save_checkpoint=False", f"--target_val_loss={target}")
    assert f"<= target_val_loss={target} at iter {first}: stopping" in p.stdout
    steps, evals, [summary] = read_log(os.path.join(out, "log.jsonl"))
    assert evals[-1]["iter"] == steps[-1]["iter"] == summary["iter"] == first and summary["reached_target"] is True
    assert load_checkpoint(os.path.join(out, "ckpt.pt"))["iter_num"] == first  # saved there
