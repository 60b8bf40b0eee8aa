"""What train.py, sample.py, bench.py and evaluate.py do on a GPU, checked on a CPU: the torch.cuda
calls are replaced by fakes that answer as a GPU machine would, and generation is watched for the
operations that make a GPU wait for the host."""

import collections
import json
import random

import numpy as np
import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

import device
from checkpoint import rng_state, save_checkpoint, set_rng_state
from model import GPT, GPTConfig
from optim import configure_optimizers, load_scaler_state

TINY = dict(n_layer=2, n_head=4, n_embd=64, block_size=32, vocab_size=97, dropout=0.0)


def tiny():
    torch.manual_seed(0)
    return GPT(GPTConfig(**TINY)).eval()


class FakeCuda:
    """torch.cuda's random-state calls on a machine with n_gpus GPUs, the current one `current`.
    Each GPU's state is a distinct tensor; the *_all calls fail when the saved list is longer than
    the GPUs there are, as torch's do."""

    def __init__(self, monkeypatch, n_gpus, current):
        self.states = {i: torch.full((16,), 10 + i, dtype=torch.uint8) for i in range(n_gpus)}
        self.current, self.n_gpus, self.restored = current, n_gpus, []
        monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
        monkeypatch.setattr(torch.cuda, "current_device", lambda: self.current)
        monkeypatch.setattr(torch.cuda, "get_rng_state", self.get)
        monkeypatch.setattr(torch.cuda, "set_rng_state", self.set)
        monkeypatch.setattr(torch.cuda, "get_rng_state_all", lambda: [self.states[i] for i in range(n_gpus)])
        monkeypatch.setattr(torch.cuda, "set_rng_state_all", self.set_all)

    def index(self, device):
        device = torch.device(device) if not isinstance(device, int) else torch.device("cuda", device)
        return self.current if device.index is None else device.index

    def get(self, device="cuda"):
        return self.states[self.index(device)].clone()

    def set(self, state, device="cuda"):
        i = self.index(device)
        if i >= self.n_gpus:
            raise RuntimeError(f"invalid device ordinal {i}")
        self.restored.append((i, state.clone()))

    def set_all(self, states):
        for i, s in enumerate(states):
            self.set(s, i)


def test_rng_state_saves_and_restores_only_this_ranks_gpu(monkeypatch):
    saved_on = FakeCuda(monkeypatch, n_gpus=8, current=3)  # rank 3 of an 8-GPU run
    state = rng_state()
    assert torch.equal(state["cuda"], saved_on.states[3])  # one tensor, this GPU's
    expected = (random.random(), np.random.rand(), torch.rand(3))
    resumed_on = FakeCuda(monkeypatch, n_gpus=4, current=3)  # the resume sees 4 GPUs: still fine
    set_rng_state(state)
    assert [i for i, _ in resumed_on.restored] == [3]
    assert torch.equal(resumed_on.restored[0][1], saved_on.states[3])
    again = (random.random(), np.random.rand(), torch.rand(3))
    assert again[:2] == expected[:2] and torch.equal(again[2], expected[2])


def test_rng_state_of_an_older_checkpoint_with_every_gpu_restores_this_one(monkeypatch):
    old = FakeCuda(monkeypatch, n_gpus=8, current=0)
    state = {**rng_state(), "cuda": torch.cuda.get_rng_state_all()}  # how checkpoints were written before
    resumed = FakeCuda(monkeypatch, n_gpus=2, current=1)  # fewer GPUs now: set_rng_state_all would fail
    set_rng_state(state)
    assert [i for i, _ in resumed.restored] == [1]
    assert torch.equal(resumed.restored[0][1], old.states[1])
    single = FakeCuda(monkeypatch, n_gpus=2, current=1)  # an older single-GPU run resumed on cuda:1
    set_rng_state({**state, "cuda": [old.states[0]]})
    assert [i for i, _ in single.restored] == [1] and torch.equal(single.restored[0][1], old.states[0])


def test_an_fp16_resume_of_a_bf16_or_fp32_run_keeps_a_fresh_grad_scaler():
    saved = torch.amp.GradScaler("cpu", enabled=False).state_dict()  # what a bf16 or fp32 run saves
    assert saved == {}
    fp16 = torch.amp.GradScaler("cpu")
    load_scaler_state(fp16, saved)  # torch's load_state_dict raises "The source state dict is empty"
    load_scaler_state(fp16, None)  # checkpoints without the key
    assert fp16.get_scale() == 2.0 ** 16  # torch's initial scale
    fp16_run = torch.amp.GradScaler("cpu", init_scale=1024.0, growth_interval=7)
    load_scaler_state(fp16, fp16_run.state_dict())  # an fp16 run's state still comes back
    assert fp16.get_scale() == 1024.0 and fp16.get_growth_interval() == 7


def test_mfu_is_per_device_under_ddp():
    m = tiny()
    one = m.estimate_mfu(tokens_per_iter=4096, dt=0.5, peak_flops=1e12)
    two = m.estimate_mfu(tokens_per_iter=2 * 4096, dt=0.5, peak_flops=1e12, world_size=2)  # each rank 4096
    assert one == pytest.approx(m.flops_per_token() * 4096 / 0.5 / 1e12)
    assert two == pytest.approx(one)
    halved = m.estimate_mfu(tokens_per_iter=4096, dt=0.5, peak_flops=1e12, world_size=2)  # the same work split
    assert halved == pytest.approx(one / 2)
    assert m.estimate_mfu(4096, 0.5, 0.0, world_size=2) is None


def test_bf16_counts_only_where_the_gpu_has_it(monkeypatch):
    def emulated_only(including_emulation=True):  # a V100 or T4: torch emulates bf16
        return including_emulation

    monkeypatch.setattr(torch.cuda, "is_bf16_supported", emulated_only)
    assert device.resolve_dtype("auto", "cuda") == "float16"
    assert device.resolve_dtype("auto", "cuda:1") == "float16"
    assert "use --dtype=float16" in device.dtype_error("bfloat16", "cuda:0")
    assert device.dtype_error("float16", "cuda:0") is None
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: True)  # an A100
    assert device.resolve_dtype("auto", "cuda") == "bfloat16"
    assert device.dtype_error("bfloat16", "cuda") is None


def test_peak_flops_by_exact_device_name(monkeypatch):
    f = device.peak_flops_of
    assert f("NVIDIA L4") == 121e12 and f("NVIDIA L40S") == 362.05e12 and f("NVIDIA L40") == 181.05e12
    assert f("NVIDIA H100 80GB HBM3") == 989.5e12 and f("NVIDIA H100 PCIe") == 756.5e12
    assert f("NVIDIA H100 NVL") == 835.5e12 and f("NVIDIA H200") == 989.5e12
    assert f("NVIDIA A100-SXM4-80GB") == 312e12 and f("NVIDIA GeForce RTX 4090") == 165.2e12
    assert f("Tesla V100-SXM2-16GB") == 125e12 and f("Tesla T4") == 65e12
    for unknown in ("NVIDIA H100", "L4", "NVIDIA GeForce RTX 4090 D", "NVIDIA B200", ""):
        assert f(unknown) == 0.0, unknown
    kinds = {name: kind for name, (_, kind) in device.PEAK_FLOPS.items()}
    assert kinds["Tesla V100-SXM2-16GB"] == kinds["Tesla T4"] == "fp16"  # no bf16 on Volta or Turing
    assert kinds["NVIDIA A100-SXM4-80GB"] == kinds["NVIDIA L4"] == "bf16"
    assert set(kinds.values()) == {"bf16", "fp16"}
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda d=None: "NVIDIA L40S")
    assert device.lookup_peak_flops("cuda:0") == 362.05e12 and device.lookup_peak_flops("cpu") == 0.0


class HostSyncs(TorchDispatchMode):
    """Counts the operations that on a GPU wait for it (a tensor read as a Python number or bool,
    nonzero) or copy a tensor made on the host to it (a Python list used as an index)."""
    SYNCS = ("aten._local_scalar_dense", "aten.nonzero", "aten.lift_fresh")  # .item() and bool() are the first

    def __init__(self):
        super().__init__()
        self.seen = collections.Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = str(func)
        if name.startswith(self.SYNCS):
            self.seen[name] += 1
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize("use_cache", [True, False])
def test_decoding_without_eos_never_waits_for_the_device(use_cache):
    m = tiny()
    prompt = torch.zeros(2, 3, dtype=torch.long)
    for new in (4, 40):  # 40 also slides the window past block_size=32
        for generator in (torch.Generator().manual_seed(1), [torch.Generator().manual_seed(s) for s in (1, 2)]):
            with HostSyncs() as syncs:  # one generator, or one per row (sample.py's)
                m.generate(prompt, new, temperature=0.8, top_k=10, top_p=0.9, use_cache=use_cache, generator=generator)
            assert not syncs.seen, f"{new} tokens: {dict(syncs.seen)}"
    with HostSyncs() as syncs:  # with an end-of-text token, one look at the finished rows per token
        m.generate(prompt, 12, temperature=0.0, eos_token=96, use_cache=use_cache)
    assert dict(syncs.seen) == {"aten._local_scalar_dense.default": 12}


def test_checkpoints_load_into_host_memory_for_evaluate(tmp_path, monkeypatch):
    """evaluate.py reads ckpt.pt whole (optimizer moments too) into host memory and sends only
    the model to its device. The device here is 'meta', which no loader maps a checkpoint to."""
    import evaluate
    model = tiny()
    opt = configure_optimizers(model, 0.1, 1e-3, (0.9, 0.95), "cpu")[0]
    model(torch.zeros(1, 4, dtype=torch.long), torch.zeros(1, 4, dtype=torch.long))[1].backward()
    opt.step()
    save_checkpoint({"model": model.state_dict(), "model_args": {**TINY}, "optimizer": [opt.state_dict()],
                     "iter_num": 1, "best_val_loss": 9.9, "config": {}}, str(tmp_path / "ckpt.pt"))
    with open(tmp_path / "meta.json", "w") as f:
        json.dump({"vocab_size": 97, "dtype": "uint16", "tokenizer": {"kind": "char", "chars": "x" * 97}}, f)
    map_locations, loaded = [], []
    real_load = torch.load

    def spy_load(*args, **kwargs):
        map_locations.append(kwargs.get("map_location"))
        return real_load(*args, **kwargs)

    def stop_at_model(ckpt):
        loaded.append(ckpt)
        raise KeyboardInterrupt  # far enough: what follows needs a real device

    monkeypatch.setattr(torch, "load", spy_load)
    import checkpoint
    monkeypatch.setattr(checkpoint, "model_from_checkpoint", stop_at_model)  # evaluate.py loads through it
    for key, value in dict(out_dir=str(tmp_path), data_dir=str(tmp_path), device="meta", dtype="float32",
                           questions="", baseline_only=False).items():
        monkeypatch.setattr(evaluate, key, value)
    with pytest.raises(KeyboardInterrupt):
        evaluate.main()
    assert map_locations == ["cpu"]
    ckpt = loaded[0]
    tensors = list(ckpt["model"].values()) + [t for s in ckpt["optimizer"][0]["state"].values()
                                              for t in s.values() if torch.is_tensor(t)]
    assert len(tensors) > len(ckpt["model"]) and {t.device.type for t in tensors} == {"cpu"}


class Switches:
    """Stands in for torch.backends.cuda.matmul or torch.backends.cudnn.conv: records what is set."""

    def __init__(self):
        self.__dict__["was_set"] = {}

    def __setattr__(self, name, value):
        self.was_set[name] = value


def test_setup_device_uses_the_new_tf32_switches_and_the_rank_gpu(monkeypatch):
    chosen, flushed = [], []
    monkeypatch.setattr(torch.cuda, "set_device", chosen.append)
    monkeypatch.setattr(torch, "set_flush_denormal", flushed.append)
    matmul, conv = Switches(), Switches()
    monkeypatch.setattr(torch.backends.cuda, "matmul", matmul)
    monkeypatch.setattr(torch.backends.cudnn, "conv", conv)
    device.setup_device("cuda:1")
    device.setup_device("cuda")  # the current GPU, whichever it is
    # not allow_tf32: torch >= 2.9 warns about it, and mixing it with fp32_precision is an error
    assert matmul.was_set == conv.was_set == {"fp32_precision": "tf32"}
    assert chosen == ["cuda:1"] and flushed == []
    device.setup_device("cpu")
    assert flushed == [True] and chosen == ["cuda:1"]


def test_adafactor_takes_the_batched_path_on_cuda():
    m = tiny()
    on_gpu = configure_optimizers(m, 0.1, 1e-2, (0.9, 0.95), "cuda", "adafactor")[0]
    on_cpu = configure_optimizers(m, 0.1, 1e-2, (0.9, 0.95), "cpu", "adafactor")[0]
    assert on_gpu.defaults["foreach"] is True and not on_cpu.defaults["foreach"]


def test_cached_attention_reads_the_whole_buffer_with_a_mask_and_gqa_copies_no_cache(monkeypatch):
    """With a cache, SDPA always gets the whole (max_len) buffer and a mask of what each new token
    may see: the same shapes at every decoding step, so a compiled step (CUDA graphs on a GPU)
    is traced once. Grouped-query attention reads the k/v heads as stored (enable_gqa, no
    repeat_interleave)."""
    import torch.nn.functional as F
    seen, real = [], F.scaled_dot_product_attention

    def spy(q, k, v, attn_mask=None, is_causal=False, enable_gqa=False, **kw):
        seen.append((q.size(2), k.size(2), q.size(1), k.size(1), attn_mask.clone(), is_causal, enable_gqa))
        return real(q, k, v, attn_mask=attn_mask, is_causal=is_causal, enable_gqa=enable_gqa, **kw)

    model = GPT(GPTConfig(n_layer=1, n_head=4, n_kv_head=2, n_embd=32, block_size=16, vocab_size=11)).eval()
    monkeypatch.setattr(F, "scaled_dot_product_attention", spy)
    monkeypatch.setattr(torch.Tensor, "repeat_interleave", lambda *a, **k: pytest.fail("the cache was copied"))
    with torch.no_grad():
        model.generate(torch.zeros(2, 3, dtype=torch.long), 3, temperature=0.0)
    assert [s[:4] + s[5:] for s in seen] == [(3, 16, 4, 2, False, True), (1, 16, 4, 2, False, True),
                                            (1, 16, 4, 2, False, True)]
    slots = torch.arange(16)
    assert torch.equal(seen[0][4], slots[None, :] <= torch.arange(3)[:, None])  # the prefill: causal
    assert torch.equal(seen[1][4], (slots <= 3)[None, :]) and torch.equal(seen[2][4], (slots <= 4)[None, :])


def test_evaluate_answers_in_fp32_whatever_the_dtype(monkeypatch):
    """Greedy answers do not run under autocast: the same argmax on every device."""
    from data.tokenizer import Tokenizer
    from evals import probe
    states = []
    real = GPT.forward

    def forward(self, *a, **kw):
        states.append(torch.is_autocast_enabled("cpu"))
        return real(self, *a, **kw)

    monkeypatch.setattr(GPT, "forward", forward)
    tok = Tokenizer({"kind": "char", "chars": "□⁇ab?"})
    with torch.autocast("cpu", dtype=torch.bfloat16):  # as if evaluate.py ran with --dtype=bfloat16
        torch.manual_seed(0)
        model = GPT(GPTConfig(n_layer=1, n_head=2, n_embd=16, block_size=16, vocab_size=5)).eval()
        out = probe.answer(model, tok, 1, ["ab?", "ba?", "a?"], "cpu", max_new_tokens=3)
        assert torch.is_autocast_enabled("cpu")  # the caller's autocast is left as it was
    assert len(out) == 3 and len(states) >= 2 and not any(states)


@pytest.mark.slow  # runs train.py
def test_checkpoints_are_memory_mapped_and_other_ranks_say_where_out_dir_must_be(tmp_path):
    import subprocess
    import sys

    from checkpoint import load_checkpoint
    save_checkpoint({"model": {"w": torch.arange(6.0)}, "model_args": {}, "iter_num": 1}, str(tmp_path / "ckpt.pt"))
    w = load_checkpoint(str(tmp_path / "ckpt.pt"))["model"]["w"]
    assert torch.equal(w, torch.arange(6.0))
    w += 1  # copy-on-write: the file keeps what was saved
    assert torch.equal(load_checkpoint(str(tmp_path / "ckpt.pt"))["model"]["w"], torch.arange(6.0))
    # a rank other than 0 that cannot find the checkpoint says why, in one line (train.py exits
    # before it starts a process group, so no torchrun is needed to see it)
    root = __import__("os").path.dirname(__import__("os").path.dirname(__import__("os").path.abspath(__file__)))
    env = dict(__import__("os").environ, RANK="3", LOCAL_RANK="1", WORLD_SIZE="4")
    p = subprocess.run([sys.executable, "train.py", "--init_from=resume", f"--out_dir={tmp_path / 'nowhere'}"],
                       cwd=root, env=env, capture_output=True, text=True, timeout=120)
    assert p.returncode != 0 and "Traceback" not in p.stderr
    assert "no checkpoint at" in p.stderr and "rank 3: with several nodes, put out_dir" in p.stderr


def _sharded_eval_worker(rank, world_size, port, model_state, data, out):
    import torch.distributed as dist
    from data.loader import TokenWindows, estimate_loss
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world_size)
    try:
        model = tiny()
        model.load_state_dict(model_state)
        splits = {"val": TokenWindows(data, 8, "cpu")}
        loss = estimate_loss(model, splits, 5, 3, torch.autocast("cpu", enabled=False), rank=rank,
                             world_size=world_size)["val"]
        mfu = model.estimate_mfu(10_000, 0.5, 1e12, world_size)  # the logged figure: all ranks' tokens
        out.put((rank, loss, mfu, loss < 2.7))  # the decision each rank takes from its number
    finally:
        dist.destroy_process_group()


@pytest.mark.slow  # two gloo processes, as under torchrun
def test_sharded_evaluation_equals_one_process_and_every_rank_decides_alike():
    import socket

    import torch.multiprocessing as mp
    from data.loader import TokenWindows, estimate_loss
    torch.manual_seed(0)
    model, data = tiny(), np.random.default_rng(0).integers(0, 11, 400).astype(np.uint16)
    one = estimate_loss(model, {"val": TokenWindows(data, 8, "cpu")}, 5, 3, torch.autocast("cpu", enabled=False))["val"]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    procs = [ctx.Process(target=_sharded_eval_worker, args=(r, 2, port, model.state_dict(), data, out)) for r in (0, 1)]
    for p in procs:
        p.start()
    results = sorted(out.get(timeout=120) for _ in procs)
    for p in procs:
        p.join(timeout=60)
    assert [r for r, *_ in results] == [0, 1]
    (_, loss0, mfu0, d0), (_, loss1, mfu1, d1) = results
    assert loss0 == loss1 and d0 == d1  # bit for bit the same number on both ranks: one decision
    assert abs(loss0 - one) < 1e-6  # and the single-process figure (only the order of the sum differs)
    # MFU: 2 ranks moving the same total tokens in the same time use half of each device
    assert mfu0 == mfu1 and abs(2 * mfu0 - model.estimate_mfu(10_000, 0.5, 1e12)) < 1e-12
