"""FSDP2 (--fsdp=True) on 2 gloo ranks on the CPU: the same training as one process or DDP (AdamW
and Adafactor), the same ckpt.pt, exact resumes, the sharded format from 2 ranks to 1; activation checkpointing
gives the same gradients; the FSDP configs' models have the sizes docs/fsdp.md computes with."""

import json
import os
import random
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from checkpoint import load_checkpoint  # noqa: E402
from data.writer import write_char_dataset  # noqa: E402
from model import GPT, GPTConfig  # noqa: E402
from optim import configure_optimizers  # noqa: E402

TINY = ["--device=cpu", "--dtype=float32", "--n_layer=2", "--n_head=2", "--n_embd=64", "--block_size=32",
        "--batch_size=4", "--gradient_accumulation_steps=4", "--eval_iters=2", "--log_interval=1",
        "--learning_rate=3e-3", "--warmup_iters=2", "--compile=False", "--always_save_checkpoint=True"]


def run(*args, check=True):
    env = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1")
    p = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)
    if check and p.returncode != 0:
        raise AssertionError(f"{' '.join(args)} failed ({p.returncode}):\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}")
    return p


def train(data, out, *extra, ranks=1, check=True):
    launch = ["-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={ranks}"] if ranks > 1 else []
    return run(*launch, "train.py", f"--data_dir={data}", f"--out_dir={out}", *TINY, *extra, check=check)


def losses(out):
    with open(os.path.join(out, "log.jsonl")) as f:
        return {r["iter"]: r["train_loss"] for r in map(json.loads, f) if "train_loss" in r}


def weights(path):
    return load_checkpoint(path)["model"]


def assert_close(a, b, atol):
    assert a.keys() == b.keys()
    for k in a:
        assert torch.allclose(a[k].float(), b[k].float(), atol=atol, rtol=0), (k, (a[k] - b[k]).abs().max())


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    out = tmp_path_factory.mktemp("chars")
    rng = random.Random(0)
    words = ["the", "cat", "sat", "on", "a", "mat", "and", "dog", "ran", "far", "\n"]
    write_char_dataset(str(out), " ".join(rng.choice(words) for _ in range(6000)), source="test")
    return str(out)


@pytest.fixture(scope="module")
def fsdp_dropout(data, tmp_path_factory):
    """6 FSDP steps with dropout 0.1, saving at 3 (kept as ckpt-00000003.pt) and 6."""
    out = str(tmp_path_factory.mktemp("fsdp_dropout"))
    train(data, out, "--fsdp=True", "--dropout=0.1", "--max_iters=6", "--eval_interval=3", "--keep_last=2", ranks=2)
    return out


@pytest.mark.slow
@pytest.mark.parametrize("optimizer", ["adamw", "adafactor"])
def test_fsdp_equals_one_process(data, tmp_path, optimizer):
    """dropout 0: 2 ranks x 2 micro-steps == 1 process x 4, step by step, with clipping at work
    (the clip must see the global norm, not one rank's shards). Adafactor's column statistics of
    a row-sharded matrix must cover all of its rows, as in one process."""
    one, two = str(tmp_path / "one"), str(tmp_path / "two")
    common = ["--max_iters=3", "--eval_interval=3", "--grad_clip=0.05", f"--optimizer={optimizer}"]
    if optimizer == "adafactor":  # its rate is relative to the weights' RMS: large enough steps to tell rows apart
        common.append("--learning_rate=5e-2")
    train(data, one, *common)
    p = train(data, two, *common, "--fsdp=True", ranks=2)
    assert "2 process(es)" in p.stdout and p.stdout.count("step 0:") == 1
    la, lb = losses(one), losses(two)
    assert len(la) == 3 and np.allclose(list(la.values()), list(lb.values()), atol=1e-5, rtol=0)
    assert_close(weights(os.path.join(one, "ckpt.pt")), weights(os.path.join(two, "ckpt.pt")), 1e-5)
    oa, ob = (load_checkpoint(os.path.join(d, "ckpt.pt"))["optimizer"] for d in (one, two))
    assert [g["params"] for g in oa[0]["param_groups"]] == [g["params"] for g in ob[0]["param_groups"]]
    for i in oa[0]["state"]:  # the same integer ids, the same moments
        assert_close(oa[0]["state"][i], ob[0]["state"][i], 1e-6)


@pytest.mark.slow
def test_fsdp_equals_ddp_with_dropout(data, fsdp_dropout, tmp_path):
    ddp = str(tmp_path / "ddp")
    train(data, ddp, "--dropout=0.1", "--max_iters=6", "--eval_interval=3", ranks=2)
    la, lb = losses(ddp), losses(fsdp_dropout)
    assert len(la) == 6 and np.allclose(list(la.values()), list(lb.values()), atol=1e-5, rtol=0)
    assert_close(weights(os.path.join(ddp, "ckpt.pt")), weights(os.path.join(fsdp_dropout, "ckpt.pt")), 1e-5)


@pytest.mark.slow
def test_fsdp_resume_is_exact_samples_and_resumes_in_one_process(data, fsdp_dropout, tmp_path):
    half = str(tmp_path / "half")
    os.makedirs(half)
    shutil.copy(os.path.join(fsdp_dropout, "ckpt-00000003.pt"), os.path.join(half, "ckpt.pt"))
    p = run("-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "train.py", f"--out_dir={half}",
            "--init_from=resume", "--max_iters=6")
    assert "iter 4:" in p.stdout and "iter 3:" not in p.stdout
    straight = losses(fsdp_dropout)
    assert losses(half) == {k: v for k, v in straight.items() if k > 3}  # bit-identical, dropout and all
    a, b = weights(os.path.join(fsdp_dropout, "ckpt.pt")), weights(os.path.join(half, "ckpt.pt"))
    assert all(torch.equal(a[k], b[k]) for k in a)
    s = run("sample.py", f"--out_dir={fsdp_dropout}", "--num_samples=1", "--max_new_tokens=20", "--device=cpu")
    assert "---------------" in s.stdout
    p = run("train.py", f"--out_dir={half}", "--init_from=resume", "--max_iters=8")  # one process takes it on
    assert "1 process(es)" in p.stdout and "iter 7:" in p.stdout and "iter 8:" in p.stdout
    p = run("-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "train.py", f"--out_dir={half}",
            "--init_from=resume", "--max_iters=9")  # and FSDP takes on one process's checkpoint
    assert "2 process(es)" in p.stdout and "iter 9:" in p.stdout and "iter 8:" not in p.stdout


@pytest.mark.slow
def test_fsdp_adafactor_resume_is_exact(data, tmp_path):
    """An FSDP Adafactor checkpoint (its row and column factors gathered into ckpt.pt) resumes
    under FSDP to the same losses and weights as the run that went straight on."""
    straight, half = str(tmp_path / "straight"), str(tmp_path / "half")
    train(data, straight, "--fsdp=True", "--optimizer=adafactor", "--max_iters=4", "--eval_interval=2",
          "--keep_last=2", ranks=2)
    os.makedirs(half)
    shutil.copy(os.path.join(straight, "ckpt-00000002.pt"), os.path.join(half, "ckpt.pt"))
    p = run("-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "train.py", f"--out_dir={half}",
            "--init_from=resume", "--max_iters=4")
    assert "iter 3:" in p.stdout and "iter 2:" not in p.stdout
    assert losses(half) == {k: v for k, v in losses(straight).items() if k > 2}
    a, b = weights(os.path.join(straight, "ckpt.pt")), weights(os.path.join(half, "ckpt.pt"))
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.slow
def test_sharded_checkpoint_from_two_ranks_to_one_and_to_ckpt_pt(data, fsdp_dropout, tmp_path):
    out = str(tmp_path / "sharded")
    train(data, out, "--fsdp=True", "--dropout=0.1", "--max_iters=3", "--eval_interval=3", "--ckpt_format=sharded",
          ranks=2)
    assert os.path.islink(os.path.join(out, "ckpt_dcp")) and not os.path.exists(os.path.join(out, "ckpt.pt"))
    p = run("parallel.py", os.path.join(out, "ckpt_dcp"))  # the one-line converter
    assert "wrote" in p.stdout
    full = load_checkpoint(os.path.join(fsdp_dropout, "ckpt-00000003.pt"))  # the full format at the same step
    conv = load_checkpoint(os.path.join(out, "ckpt.pt"))
    assert all(torch.equal(full["model"][k], conv["model"][k]) for k in full["model"])
    for i, s in full["optimizer"][0]["state"].items():
        assert all(torch.equal(s[k], conv["optimizer"][0]["state"][i][k]) for k in s)
    assert conv["iter_num"] == 3 and conv["rng"][1]["torch"].equal(full["rng"][1]["torch"])
    os.remove(os.path.join(out, "ckpt.pt"))
    p = run("train.py", f"--out_dir={out}", "--init_from=resume", "--max_iters=5")  # 2 ranks' shards, 1 process
    assert "1 process(es)" in p.stdout and "iter 4:" in p.stdout and "sharded checkpoint" in p.stdout
    assert sorted(f for f in os.listdir(out) if f.startswith("ckpt_dcp-")) == ["ckpt_dcp-00000005"]


@pytest.mark.slow
def test_fsdp_composes_with_compile_and_activation_checkpointing(data, tmp_path):
    p = train(data, str(tmp_path / "c"), "--fsdp=True", "--compile=True", "--activation_checkpointing=True",
              "--dropout=0.1", "--max_iters=2", "--eval_interval=2", ranks=2)
    assert "compiling the blocks" in p.stdout and "iter 2:" in p.stdout


@pytest.mark.filterwarnings("ignore:torch.distributed is disabled")  # one process saves here, as one process may
def test_a_sharded_save_at_a_saved_iteration_keeps_the_old_one_until_the_new_one_is_whole(tmp_path, monkeypatch):
    """A resume re-saves at its own iteration (always_save_checkpoint), and ckpt_interval can land on an
    evaluation: a crash in that save must leave the folder it was replacing as the latest."""
    import torch.distributed.checkpoint as dcp

    from parallel import latest_sharded, load_run, save_sharded

    torch.manual_seed(0)
    model = GPT(GPTConfig(n_layer=1, n_head=2, n_embd=16, block_size=8, vocab_size=11))
    optimizers = configure_optimizers(model, 0.1, 1e-3, (0.9, 0.95), "cpu")
    out = str(tmp_path)
    save_sharded(model, optimizers, {"iter_num": 20, "saved": "first"}, out)

    def crash(state, checkpoint_id):  # dies half way: a folder with part of the shards
        os.makedirs(checkpoint_id, exist_ok=True)
        raise KeyboardInterrupt

    monkeypatch.setattr(dcp, "save", crash)
    with pytest.raises(KeyboardInterrupt):
        save_sharded(model, optimizers, {"iter_num": 20, "saved": "second"}, out)
    monkeypatch.undo()
    assert latest_sharded(out) is not None and load_run(latest_sharded(out))["saved"] == "first"
    save_sharded(model, optimizers, {"iter_num": 20, "saved": "third"}, out)
    assert load_run(latest_sharded(out))["saved"] == "third"
    assert [f for f in os.listdir(out) if f.startswith("ckpt_dcp-")] == [os.path.basename(latest_sharded(out))]
    for it in (21, 22, 23):  # keep_last: the newest whole saves of other iterations stay
        save_sharded(model, optimizers, {"iter_num": it}, out, keep_last=2)
    assert sorted(f for f in os.listdir(out) if f.startswith("ckpt_dcp-")) == [
        "ckpt_dcp-00000021", "ckpt_dcp-00000022", "ckpt_dcp-00000023"]


def test_fsdp_refuses_muon_and_fp16_in_one_line():
    from parallel import fsdp_error

    assert "--optimizer=adamw" in fsdp_error("muon", "float32")
    assert "--dtype=bfloat16" in fsdp_error("adamw", "float16")
    assert fsdp_error("adafactor", "float32") is None  # optim.ShardedAdafactor steps the shards
    assert fsdp_error("adamw", "bfloat16") is None


@pytest.mark.parametrize("maximize", [False, True])
def test_out_of_place_adafactor_equals_torchs_on_plain_tensors(maximize):
    """ShardedAdafactor's DTensor path (adafactor_out_of_place), run on plain tensors, is torch's
    Adafactor step for step: a matrix (row and column factors), a 3-D tensor, a vector, weight decay."""
    from optim import ShardedAdafactor, adafactor_out_of_place

    g = torch.Generator().manual_seed(0)
    shapes = [(7, 5), (3, 4, 6), (9,)]
    start = [torch.randn(s, generator=g) * 0.1 for s in shapes]
    ours, ref = [[torch.nn.Parameter(w.clone()) for w in start] for _ in range(2)]
    kw = dict(lr=3e-2, weight_decay=0.1, maximize=maximize)
    a, b = ShardedAdafactor(ours, **kw), torch.optim.Adafactor(ref, **kw)
    for _ in range(5):
        for p, q in zip(ours, ref):
            p.grad = torch.randn(p.shape, generator=g)
            q.grad = p.grad.clone()
        adafactor_out_of_place(a)
        b.step()
        for p, q in zip(ours, ref):
            assert torch.allclose(p, q, atol=1e-6, rtol=0)
    for p, q in zip(ours, ref):  # torch's names and shapes, so checkpoints do not tell them apart
        sa, sb = a.state[p], b.state[q]
        assert sa.keys() == sb.keys() and all(torch.allclose(sa[k], sb[k], atol=1e-6, rtol=0) for k in sa)
    p, q = torch.nn.Parameter(start[0].clone()), torch.nn.Parameter(start[0].clone())
    p.grad, q.grad = torch.ones_like(p), torch.ones_like(q)
    ShardedAdafactor([p]).step()  # plain tensors: torch's own step, bit for bit
    torch.optim.Adafactor([q]).step()
    assert torch.equal(p, q)


def test_activation_checkpointing_gives_the_same_gradients():
    """With dropout: the recompute must draw the same masks as the forward it replaces."""
    from parallel import checkpoint_activations

    cfg = GPTConfig(n_layer=2, n_head=2, n_embd=64, block_size=32, vocab_size=50, dropout=0.2)
    x = torch.randint(0, 50, (4, 32), generator=torch.Generator().manual_seed(0))
    grads = []
    for ac in (False, True):
        torch.manual_seed(0)
        model = GPT(cfg)
        if ac:
            checkpoint_activations(model)
        torch.manual_seed(1)
        _, loss = model(x, x)
        loss.backward()
        grads.append({n: p.grad for n, p in model.named_parameters()})
        keys = list(model.state_dict())
    assert keys == list(GPT(cfg).state_dict())  # nothing of it in the state dict
    for n in grads[0]:
        assert torch.allclose(grads[0][n], grads[1][n], atol=1e-6, rtol=0), n


def config_keys(path):
    keys = {}
    with open(os.path.join(ROOT, path)) as f:
        exec(f.read(), {}, keys)  # configs import nothing: plain assignments
    return keys


def test_fsdp_configs_build_the_models_docs_fsdp_md_counts():
    """Built on the meta device (no memory): the parameter counts the memory table uses."""
    xl = config_keys("config/finetune_gpt2_xl_fsdp.py")
    assert xl["init_from"] == "gpt2-xl" and xl["fsdp"] and xl["eval_iters"] % 8 == 0
    big = config_keys("config/train_5b_fsdp.py")
    assert big["fsdp"] and big["activation_checkpointing"] and big["ckpt_format"] == "sharded"
    assert big["eval_iters"] % 8 == 0 and big["gradient_accumulation_steps"] % 8 == 0
    gpt2_xl = dict(n_layer=48, n_head=25, n_embd=1600, vocab_size=50257)  # OpenAI's shape
    ours = {k: big[k] for k in ("n_layer", "n_head", "n_embd", "bias", "block_size")}
    for shape, n in ((gpt2_xl, 1_557_611_200), ({**ours, "vocab_size": 50257, "pad_vocab": True}, 5_116_694_016)):
        with torch.device("meta"):
            model = GPT(GPTConfig(**shape))
        assert sum(p.numel() for p in model.parameters()) == n
