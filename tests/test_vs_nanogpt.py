"""bench/vs_nanogpt.py's pure pieces, without nanoGPT or a network: the meta.json -> meta.pkl
conversion and the work folder, the log parsers on handmade nanoGPT and gptlab logs, the check
that gptlab's CPU config is nanoGPT's recipe, and the one-line errors."""

import importlib.util
import json
import os
import pickle

import pytest

from conftest import ROOT, exit_message

_spec = importlib.util.spec_from_file_location("vs_nanogpt", os.path.join(ROOT, "bench", "vs_nanogpt.py"))
vs = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(vs)

CHARS = "\n !$&',-.3:;?ABCabcz"
META = {"vocab_size": len(CHARS), "dtype": "uint16", "tokenizer": {"kind": "char", "chars": CHARS},
        "train_tokens": 100, "val_tokens": 10}

# as nanoGPT's train.py prints (iter 0 is its first step; its clock counts an evaluation in the next step)
NANOGPT_LOG = "\n".join([
    "found vocab_size = 65 (inside data/shakespeare_char/meta.pkl)",
    "step 0: train loss 4.1676, val loss 4.1649",
    "iter 0: loss 4.1828, time 764.46ms, mfu -100.00%",
    *[f"iter {i}: loss 3.9, time {50 + i}.00ms, mfu 0.02%" for i in range(1, 15)],
    "step 15: train loss 3.2689, val loss 3.2828",
    "saving checkpoint to out",
    "iter 15: loss 3.3294, time 660.11ms, mfu 0.02%",
    "iter 16: loss 3.3, time 70.50ms, mfu 0.02%",
])
# as gptlab's train.py prints (iter 1 is its first step)
GPTLAB_LOG = "\n".join([
    "step 0: train loss 4.1942, val loss 4.1891, val ppl 65.97",
    *[f"iter {i}: loss 4.19, lr 9.90e-06, time {40 + i}.50ms, 11,469 tok/s" for i in range(1, 15)],
    "step 14: train loss 3.2664, val loss 3.2976, val ppl 27.05",
    "saved checkpoint to out/ckpt.pt at iter 14 (val improved)",
    "iter 15: loss 3.2, lr 1.2e-04, time 900.00ms, 9,000 tok/s",
    "iter 16: loss 3.1, lr 1.3e-04, time 60.25ms, 11,000 tok/s",
    "val loss 3.2976 <= target_val_loss=3.3 at iter 16: stopping",
])


def fake_nanogpt(folder, files=("train.py", "model.py", "configurator.py", "config/train_shakespeare_char.py")):
    for name in files:
        os.makedirs(os.path.join(folder, os.path.dirname(name)), exist_ok=True)
        open(os.path.join(folder, name), "w").close()
    return str(folder)


def fake_data(folder):
    os.makedirs(folder, exist_ok=True)
    for name in ("train.bin", "val.bin"):
        with open(os.path.join(folder, name), "wb") as f:
            f.write(bytes(range(8)))
    with open(os.path.join(folder, "meta.json"), "w") as f:
        json.dump(META, f)
    return str(folder)


def test_nanogpt_meta_is_nanogpts_dict():
    m = vs.nanogpt_meta(META)
    assert set(m) == {"vocab_size", "itos", "stoi"}
    assert m["vocab_size"] == len(CHARS) == len(m["itos"]) == len(m["stoi"])
    assert m["itos"][0] == "\n" and m["stoi"]["z"] == len(CHARS) - 1
    assert all(m["stoi"][m["itos"][i]] == i for i in range(len(CHARS)))
    assert "".join(m["itos"][i] for i in range(len(CHARS))) == CHARS  # sorted as prepare.py sorts them
    with pytest.raises(ValueError, match="character-level"):
        vs.nanogpt_meta({**META, "tokenizer": {"kind": "tiktoken", "name": "gpt2"}})


def test_work_dir_is_laid_out_for_nanogpt(tmp_path):
    nano, data, work = fake_nanogpt(tmp_path / "nano"), fake_data(tmp_path / "data"), str(tmp_path / "work")
    vs.make_work_dir(work, nano, data)
    vs.make_work_dir(work, nano, data)  # again, over the same folder (--work_dir kept from a run)
    linked = os.path.realpath(os.path.join(work, "configurator.py"))
    assert linked == os.path.realpath(os.path.join(nano, "configurator.py"))
    assert os.path.isfile(os.path.join(work, "config", "train_shakespeare_char.py"))
    with open(os.path.join(work, "data", "shakespeare_char", "train.bin"), "rb") as f:
        assert f.read() == bytes(range(8))
    with open(os.path.join(work, "data", "shakespeare_char", "meta.pkl"), "rb") as f:
        assert pickle.load(f) == vs.nanogpt_meta(META)
    assert sorted(os.listdir(data)) == ["meta.json", "train.bin", "val.bin"]  # nothing written beside gptlab's data


def test_iter_times_of_nanogpt_log():
    times = vs.iter_times(NANOGPT_LOG, skip=10)
    # 17 steps (iter 0..16); iter 0 and iter 15 follow an evaluation; the first 10 are skipped
    assert times == [60.0, 61.0, 62.0, 63.0, 64.0, 70.5]
    assert 660.11 not in vs.iter_times(NANOGPT_LOG, skip=0) and 764.46 not in vs.iter_times(NANOGPT_LOG, skip=0)


def test_iter_times_of_gptlab_log():
    times = vs.iter_times(GPTLAB_LOG, skip=10)
    assert times == [51.5, 52.5, 53.5, 54.5, 60.25]  # iter 1 and iter 15 follow an evaluation
    assert 900.0 not in vs.iter_times(GPTLAB_LOG, skip=0)


def test_evaluations_of_both_logs():
    assert vs.evaluations(NANOGPT_LOG) == [(0, 4.1676, 4.1649), (15, 3.2689, 3.2828)]
    assert vs.evaluations(GPTLAB_LOG)[-1] == (14, 3.2664, 3.2976)
    assert vs.evaluations("iter 1: loss 4.1, time 5.00ms\n") == []


def test_gptlab_cpu_config_is_nanogpts_recipe(tmp_path):
    want = {k: v for k, v in {**vs.RECIPE, **vs.NANOGPT_REST}.items() if k not in ("log_interval", "device", "compile")}
    assert vs.config_mismatch(os.path.join(ROOT, "config", "train_shakespeare_char_cpu.py"), want) == []
    other = tmp_path / "other.py"
    other.write_text("batch_size = 64\nblock_size = 64\n")
    diff = vs.config_mismatch(str(other), {"batch_size": 12, "block_size": 64, "n_layer": 4})
    assert diff == ["batch_size=64 (nanoGPT: 12)", "n_layer='unset' (nanoGPT: 4)"]


def test_error_when_nanogpt_dir_is_not_nanogpt(tmp_path):
    message = exit_message(vs.main, [f"--nanogpt_dir={tmp_path}"])
    assert "train.py" in message and "model.py" in message
    assert "git clone https://github.com/karpathy/nanoGPT" in message
    half = fake_nanogpt(tmp_path / "half", files=("train.py", "configurator.py", "config/train_shakespeare_char.py"))
    message = exit_message(vs.check_inputs, half, fake_data(tmp_path / "data"))
    assert "has no model.py;" in message  # and only model.py


def test_error_when_data_is_not_prepared(tmp_path):
    message = exit_message(vs.check_inputs, fake_nanogpt(tmp_path / "nano"), str(tmp_path / "nothing"))
    assert "train.bin is missing" in message and "python data/shakespeare_char/prepare.py" in message


def test_error_on_unknown_part(tmp_path):
    message = exit_message(vs.main, [f"--nanogpt_dir={fake_nanogpt(tmp_path)}", "--parts=sample,speed"])
    assert "speed" in message and "sample, train, speedrun" in message


def test_gptlab_sampling_rows_are_each_format_eager_and_compiled(monkeypatch):
    import torch

    from model import GPT, GPTConfig
    from quantize import BF16Linear, Int8Linear

    monkeypatch.setattr(GPT, "compile_decoding", lambda self: setattr(self, "compiled_step", "compiled"))  # no inductor here

    def load():
        torch.manual_seed(0)
        return GPT(GPTConfig(n_layer=1, n_head=2, n_embd=32, block_size=16, vocab_size=11))

    models = vs.gptlab_models(load, ["none", "bf16", "int8"])
    assert [name for name, _ in models] == ["gptlab", "gptlab, compiled decoding", "gptlab bf16",
                                            "gptlab bf16, compiled decoding", "gptlab int8",
                                            "gptlab int8, compiled decoding"]
    for name, model in models:
        assert (model.compiled_step is not None) == name.endswith("compiled decoding")
        assert any(isinstance(m, BF16Linear) for m in model.modules()) == ("bf16" in name)
        assert any(isinstance(m, Int8Linear) for m in model.modules()) == ("int8" in name)
    assert [name for name, _ in vs.gptlab_models(load, ["int8"], compiled=(False,))] == ["gptlab int8"]


def test_error_on_a_weight_format_this_cpu_cannot_run(tmp_path, monkeypatch):
    import quantize
    monkeypatch.setattr(quantize, "cpu_has_bf16", lambda: False)
    nano = fake_nanogpt(tmp_path)
    assert "not a weight format" in exit_message(vs.main, [f"--nanogpt_dir={nano}", "--quantize=int4"])
    assert "needs a CPU with bf16 units" in exit_message(vs.main, [f"--nanogpt_dir={nano}", "--quantize=none,bf16"])
