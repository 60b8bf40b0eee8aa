"""GPT-2 weights in and out (Hugging Face transformers), and nanoGPT's checkpoint folders.

Every model here is tiny and random; nothing is downloaded."""

import json
import os
import pickle

import pytest
import torch
import transformers

from conftest import exit_message, in_process, run
from data.tokenizer import load_nanogpt_meta_pkl
from model import GPT, GPTConfig
from optim import configure_optimizers
from checkpoint import load_checkpoint, load_pretrained, upgrade_nanogpt_checkpoint

TINY = dict(n_layer=2, n_head=4, n_embd=64, block_size=32, vocab_size=97)


def randomize(model, seed=0):
    """Every parameter random (biases and norm gains too), so that a mix-up of any tensor shows."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.1 + (1.0 if p.dim() == 1 else 0.0))
    return model.eval()


def tiny_hf(path, activation="gelu_new", **kw):
    config = transformers.GPT2Config(n_layer=2, n_head=4, n_embd=64, n_positions=32, vocab_size=97,
                                     activation_function=activation, bos_token_id=0, eos_token_id=0, **kw)
    hf = randomize(transformers.GPT2LMHeadModel(config))
    hf.save_pretrained(path)
    return hf


def ours_from(model_args, sd):
    model = GPT(GPTConfig(**model_args)).eval()
    model.load_state_dict(sd)
    return model


@pytest.mark.parametrize("activation", ["gelu_new", "gelu"])
def test_hf_gpt2_loads_with_the_same_logits(tmp_path, activation):
    hf = tiny_hf(tmp_path, activation)
    model_args, sd = load_pretrained(f"hf:{tmp_path}")
    assert model_args["gelu_tanh"] == (activation == "gelu_new") and model_args["vocab_size"] == 97
    ours = ours_from(model_args, sd)
    idx = torch.randint(0, 97, (3, 32))
    with torch.no_grad():
        assert torch.allclose(ours(idx)[0], hf(idx).logits, atol=1e-5)


def test_block_size_crops_the_position_table_and_dropout_is_ours(tmp_path):
    hf = tiny_hf(tmp_path)
    model_args, sd = load_pretrained(f"hf:{tmp_path}", dropout=0.1, block_size=16)
    assert model_args["block_size"] == 16 and model_args["dropout"] == 0.1
    assert torch.equal(sd["transformer.wpe.weight"], hf.transformer.wpe.weight[:16])
    ours = ours_from(model_args, sd)
    idx = torch.randint(0, 97, (2, 16))
    with torch.no_grad():
        assert torch.allclose(ours(idx)[0], hf(idx).logits, atol=1e-5)  # the first 16 positions are unchanged
    with pytest.raises(ValueError, match="at most"):
        load_pretrained(f"hf:{tmp_path}", block_size=64)


def save_ours(out_dir, model, **config):
    os.makedirs(out_dir, exist_ok=True)
    cfg = model.config
    torch.save({"model": model.state_dict(), "model_args": {k: getattr(cfg, k) for k in cfg.__dataclass_fields__},
                "config": config, "iter_num": 0, "best_val_loss": 1.0}, os.path.join(out_dir, "ckpt.pt"))


@pytest.mark.parametrize("flags", [dict(), dict(gelu_tanh=True, tie_embeddings=False), dict(bias=False),
                                   dict(pad_vocab=True, tie_embeddings=False)])
def test_export_then_import_round_trips(tmp_path, flags):
    import export

    torch.manual_seed(0)
    ours = randomize(GPT(GPTConfig(**TINY, **flags)))
    save_ours(tmp_path / "run", ours)
    dest = str(tmp_path / "hf")
    export.export_hf(load_checkpoint(str(tmp_path / "run" / "ckpt.pt")), dest, None)
    assert os.path.isfile(os.path.join(dest, "model.safetensors"))
    hf = transformers.GPT2LMHeadModel.from_pretrained(dest).eval()
    idx = torch.randint(0, 97, (2, 32))
    with torch.no_grad():
        expect = ours(idx)[0]
        assert torch.allclose(hf(idx).logits, expect, atol=1e-5)
    model_args, sd = load_pretrained(f"hf:{dest}")
    back = ours_from(model_args, sd)
    assert hf.config.vocab_size == model_args["vocab_size"] == 97 and not model_args["pad_vocab"]
    for k, v in ours.state_dict().items():  # the same tensors, bit for bit, less the padded rows
        assert torch.equal(sd[k], v[:97] if k in ("transformer.wte.weight", "lm_head.weight") else v), k
    if not flags.get("bias", True):  # GPT-2 always has biases: exported as zeros, the same function
        assert all((v == 0).all() for k, v in sd.items() if k.endswith(".bias"))
    with torch.no_grad():
        if flags.get("pad_vocab"):  # a head of 97 rows, not 128: the same sums, maybe not in the same order
            assert torch.allclose(back(idx)[0], expect, atol=1e-6)
        else:
            assert torch.equal(back(idx)[0], expect)


def test_export_script_writes_tokenizer_and_refuses_non_gpt2_flags(tmp_path, char_data):

    torch.manual_seed(0)
    vocab = json.load(open(os.path.join(char_data, "meta.json")))["vocab_size"]
    save_ours(tmp_path / "gpt2ish", GPT(GPTConfig(**{**TINY, "vocab_size": vocab})), data_dir=char_data)
    run("export.py", f"--out_dir={tmp_path / 'gpt2ish'}", "--to=hf")
    exported = tmp_path / "gpt2ish" / "hf"
    assert json.load(open(exported / "meta.json"))["tokenizer"]["kind"] == "char"
    args = (f"--init_from=hf:{exported}", "--start=ROMEO:", "--num_samples=1", "--max_new_tokens=30", "--device=cpu")
    out, streamed = in_process("sample.py", *args), in_process("sample.py", *args, "--stream=True")
    assert out.startswith("ROMEO:") and len(out.split("\n---")[0]) == len("ROMEO:") + 30
    assert streamed == out  # the same seed: streaming prints the same text as it comes

    save_ours(tmp_path / "modern", GPT(GPTConfig(**TINY, use_rope=True, use_swiglu=True)))
    err = exit_message(in_process, "export.py", f"--out_dir={tmp_path / 'modern'}", "--to=hf")
    assert not os.path.exists(tmp_path / "modern" / "hf")
    assert "use_swiglu=True" in err and "use_rope=True" in err


@pytest.mark.slow
def test_train_finetunes_from_a_hf_folder_with_a_cropped_block(tmp_path, char_data):
    vocab = json.load(open(os.path.join(char_data, "meta.json")))["vocab_size"]
    config = transformers.GPT2Config(n_layer=2, n_head=4, n_embd=64, n_positions=32, vocab_size=vocab)
    hf = randomize(transformers.GPT2LMHeadModel(config))
    hf.save_pretrained(tmp_path / "hf")
    out = tmp_path / "ft"
    run("train.py", f"--init_from=hf:{tmp_path / 'hf'}", f"--data_dir={char_data}", f"--out_dir={out}",
        "--block_size=16", "--dropout=0.1", "--batch_size=2", "--gradient_accumulation_steps=1",
        "--max_iters=1", "--eval_interval=1", "--eval_iters=1", "--learning_rate=0", "--weight_decay=0",
        "--device=cpu")
    ckpt = load_checkpoint(str(out / "ckpt.pt"))
    assert ckpt["model_args"]["block_size"] == 16 and ckpt["model_args"]["dropout"] == 0.1
    # learning rate 0: the weights are still GPT-2's, with the position table cut to 16 rows
    assert torch.equal(ckpt["model"]["transformer.wpe.weight"], hf.transformer.wpe.weight[:16])
    assert torch.equal(ckpt["model"]["transformer.h.0.attn.c_attn.weight"], hf.transformer.h[0].attn.c_attn.weight.t())
    p = run("train.py", f"--init_from=hf:{tmp_path / 'hf'}", f"--data_dir={char_data}", "--n_layer=4",
            "--device=cpu", check=False)
    assert p.returncode != 0 and "--n_layer" in p.stderr
    p = run("train.py", "--init_from=gpt2", f"--data_dir={char_data}", "--device=cpu", check=False)
    assert p.returncode != 0 and "GPT-2 BPE" in p.stderr  # refused before any download is tried


def test_gpt2_offline_is_one_clear_line(tmp_path, monkeypatch, network_attempts):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path))  # an empty cache
    p = run("sample.py", "--init_from=gpt2", "--device=cpu", check=False, timeout=120)
    err = p.stderr.strip().splitlines()
    assert p.returncode != 0 and err[-1].startswith("error:") and "hf:PATH" in err[-1]
    # without HF_HUB_OFFLINE the Hub is tried, once, and found out of reach (here: refused by
    # the tests' offline guard, as on a machine without a network), in a moment, not a minute
    monkeypatch.delenv("HF_HUB_OFFLINE")
    line = exit_message(in_process, "sample.py", "--init_from=gpt2", "--device=cpu")
    assert "'gpt2'" in line and "huggingface.co is out of reach" in line and "hf:PATH" in line
    assert [a.split(" (pid")[0] for a in network_attempts()] == ["a lookup of huggingface.co:443"]


# ------------------------------------------------------------------------------ nanoGPT

NANOGPT_ARGS = dict(n_layer=2, n_head=4, n_embd=64, block_size=32, bias=False, dropout=0.0)


def nanogpt_order(model):
    """nanoGPT registers the position table right after the token embedding."""
    names = [n for n, _ in model.named_parameters()]
    names.remove("transformer.wpe.weight")
    names.insert(names.index("transformer.wte.weight") + 1, "transformer.wpe.weight")
    return names


def write_nanogpt_dir(folder, chars):
    """A checkpoint folder as nanoGPT's train.py writes it (a compiled run: '_orig_mod.'
    names; best_val_loss a tensor), its optimizer stepped a few times, and a meta.pkl."""
    torch.manual_seed(0)
    model = GPT(GPTConfig(**NANOGPT_ARGS, vocab_size=len(chars)))
    params = dict(model.named_parameters())
    order = nanogpt_order(model)
    groups = [{"params": [params[n] for n in order if params[n].dim() >= 2], "weight_decay": 0.1},
              {"params": [params[n] for n in order if params[n].dim() < 2], "weight_decay": 0.0}]
    opt = torch.optim.AdamW(groups, lr=1e-3, betas=(0.9, 0.99))
    for _ in range(3):
        idx = torch.randint(0, len(chars), (2, 32))
        model(idx, idx)[1].backward()
        opt.step()
        opt.zero_grad()
    os.makedirs(folder, exist_ok=True)
    config = {"out_dir": str(folder), "dataset": "a_dataset_gptlab_has_not_prepared", "batch_size": 4,
              "block_size": 32, "learning_rate": 1e-3, "compile": True, "init_from": "scratch"}
    sd = model.state_dict()
    torch.save({"model": {"_orig_mod." + k: sd[k] for k in order + ["lm_head.weight"]},  # nanoGPT's order
                "optimizer": opt.state_dict(), "model_args": {**NANOGPT_ARGS, "vocab_size": len(chars)},
                "iter_num": 10, "best_val_loss": torch.tensor(2.5), "config": config}, folder / "ckpt.pt")
    with open(folder / "meta.pkl", "wb") as f:
        pickle.dump({"vocab_size": len(chars), "itos": dict(enumerate(chars)),
                     "stoi": {c: i for i, c in enumerate(chars)}}, f)
    by_name = {n: opt.state[params[n]] for n in order}
    return model, by_name


def test_nanogpt_checkpoint_loads_with_its_optimizer_state_renumbered(tmp_path):
    model, nano_state = write_nanogpt_dir(tmp_path, "\n !abcdefgh")
    ckpt = load_checkpoint(str(tmp_path / "ckpt.pt"))  # weights_only=True inside
    assert ckpt["best_val_loss"] == 2.5 and ckpt["model_args"]["use_rope"] is False
    ours = GPT(GPTConfig(**ckpt["model_args"]))
    ours.load_state_dict(ckpt["model"])
    [opt] = configure_optimizers(ours, 0.1, 1e-3, (0.9, 0.99), "cpu")
    opt.load_state_dict(ckpt["optimizer"][0])
    for name, p in ours.named_parameters():
        assert torch.equal(p, dict(model.named_parameters())[name])
        assert torch.equal(opt.state[p]["exp_avg"], nano_state[name]["exp_avg"]), name
        assert torch.equal(opt.state[p]["exp_avg_sq"], nano_state[name]["exp_avg_sq"]), name
    assert upgrade_nanogpt_checkpoint(ckpt) is ckpt  # ours now: a second upgrade changes nothing


@pytest.mark.slow
def test_nanogpt_folder_samples_and_resumes(tmp_path, char_data):
    chars = json.load(open(os.path.join(char_data, "meta.json")))["tokenizer"]["chars"]
    folder = tmp_path / "out-nanogpt"
    write_nanogpt_dir(folder, chars)
    # the tokenizer can only come from the folder's meta.pkl: the dataset it names does not exist here
    out = in_process("sample.py", f"--out_dir={folder}", "--start=ROMEO:", "--num_samples=1", "--max_new_tokens=40",
                     "--device=cpu")
    text = out.split("---------------")[0].rstrip("\n")
    assert text.startswith("ROMEO:") and len(text) >= 40 and set(text) <= set(chars)
    # nanoGPT's config says compile=True; on a CPU, torch.compile would take longer than the rest of the test
    run("train.py", "--init_from=resume", f"--out_dir={folder}", f"--data_dir={char_data}", "--batch_size=2", "--block_size=32",
        "--gradient_accumulation_steps=1", "--max_iters=13", "--eval_interval=100", "--eval_iters=1", "--device=cpu",
        "--dtype=float32", "--compile=False")
    ckpt = load_checkpoint(str(folder / "ckpt.pt"))
    assert ckpt["iter_num"] == 13 and "rng" in ckpt  # now a gptlab checkpoint
    step = ckpt["optimizer"][0]["state"][0]["step"]
    assert float(step) == 3 + 3  # nanoGPT's 3 steps, then ours


def test_meta_pkl_refuses_anything_but_plain_values(tmp_path):
    class Sneaky:
        def __reduce__(self):
            return (print, ("this must never run",))

    path = tmp_path / "meta.pkl"
    path.write_bytes(pickle.dumps({"vocab_size": 2, "itos": {0: "a", 1: "b"}, "extra": Sneaky()}))
    with pytest.raises(ValueError, match="builtins.print"):
        load_nanogpt_meta_pkl(str(path))
    path.write_bytes(pickle.dumps({"vocab_size": 2, "itos": {0: "a", 1: "b"}, "stoi": {"a": 0, "b": 1}}))
    assert load_nanogpt_meta_pkl(str(path))["tokenizer"] == {"kind": "char", "chars": "ab"}


@pytest.mark.parametrize("name", ["eval_gpt2", "eval_gpt2_medium", "eval_gpt2_large", "eval_gpt2_xl",
                                  "finetune_shakespeare"])
def test_gpt2_configs_set_only_train_keys(name):
    import train
    from checkpoint import GPT2_NAMES
    from configurator import apply_overrides

    keys = {k: getattr(train, k) for k in train.CONFIG_KEYS}
    chosen = apply_overrides(keys, [f"config/{name}.py"])
    assert chosen["init_from"] in GPT2_NAMES
    assert chosen.get("eval_only", False) == name.startswith("eval")


def test_hf_settings_we_do_not_implement_are_named():
    from hf_gpt2 import gpt2_config_from_hf

    hf = transformers.GPT2Config(n_layer=2, n_head=4, n_embd=64, scale_attn_by_inverse_layer_idx=True,
                                 activation_function="relu").to_dict()
    with pytest.raises(ValueError, match="activation_function='relu', scale_attn_by_inverse_layer_idx=True"):
        gpt2_config_from_hf(hf)


def test_streamed_text_decodes_each_token_once_and_waits_for_split_characters():
    import sample
    from data.tokenizer import Tokenizer
    tok = Tokenizer({"kind": "tiktoken", "name": "gpt2"})
    text = "naïve café — 東京 🙂 done"
    ids = tok.encode(text)
    assert any(tok.decode([i]).endswith("\ufffd") for i in ids)  # some characters span tokens
    seen = []
    real = tok.decode
    tok.decode = lambda chunk: seen.append(len(chunk)) or real(chunk)
    pieces = list(sample.text_pieces(tok, iter(ids)))
    assert "".join(pieces) == text and not any("\ufffd" in p for p in pieces)
    assert sum(seen) < 2 * len(ids) and max(seen) <= 4  # no re-decoding of the whole continuation
