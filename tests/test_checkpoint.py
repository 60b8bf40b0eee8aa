"""checkpoint.start_from, the --init_from dispatch, called in-process: every way a run can start,
and every one-line error it gives instead."""

import os

import pytest
import torch

from checkpoint import GPT2_NAMES, load_checkpoint, model_from_checkpoint, save_checkpoint, start_from
from model import GPT, GPTConfig

CHAR_META = {"vocab_size": 65, "dtype": "uint16", "tokenizer": {"kind": "char", "chars": "x" * 65}}
BPE_META = {"vocab_size": 50257, "dtype": "uint16", "tokenizer": {"kind": "tiktoken", "name": "gpt2"}}
ARGS = dict(n_layer=1, n_head=2, n_embd=32, block_size=16, vocab_size=None, dropout=0.0, bias=True,
            pad_vocab=True, attn_impl="sdpa")


def run_args(**over):
    """A run's GPTConfig fields as train.py's keys give them (every field, vocab_size None)."""
    from dataclasses import fields
    return {**{f.name: f.default for f in fields(GPTConfig)}, **ARGS, **over}


def saved_run(tmp_path, **over):
    """A checkpoint folder of a tiny model trained from scratch; returns (folder, model)."""
    args, _ = start_from("scratch", run_args(**over), {}, CHAR_META, "d")
    model = GPT(GPTConfig(**args))
    save_checkpoint({"model": model.state_dict(), "model_args": args, "iter_num": 7, "best_val_loss": 1.5,
                     "optimizer": [], "config": {}}, str(tmp_path / "ckpt.pt"))
    return tmp_path, model


def test_scratch_takes_the_vocabulary_from_the_dataset():
    args, ckpt = start_from("scratch", run_args(), {}, CHAR_META, "d")
    assert ckpt is None and args["vocab_size"] == 65 and args["n_embd"] == 32
    args, _ = start_from("scratch", run_args(vocab_size=100), {"vocab_size": 100}, CHAR_META, "d")
    assert args["vocab_size"] == 100
    with pytest.raises(ValueError, match=r"--vocab_size=10 is smaller than the dataset's 65"):
        start_from("scratch", run_args(vocab_size=10), {"vocab_size": 10}, CHAR_META, "d")


def test_resume_brings_the_whole_checkpoint_and_its_model(tmp_path):
    folder, model = saved_run(tmp_path, use_rope=True)
    ckpt = load_checkpoint(str(folder / "ckpt.pt"))
    # the run's keys are the defaults again (use_rope=False): the checkpoint's model wins, dropout is ours
    args, got = start_from("resume", run_args(dropout=0.2), {"dropout": 0.2}, CHAR_META, "d", ckpt)
    assert got is ckpt and got["iter_num"] == 7
    assert args["use_rope"] is True and args["vocab_size"] == 65 and args["dropout"] == 0.2
    again = GPT(GPTConfig(**args))
    again.load_state_dict(got["model"])
    x = torch.randint(0, 65, (1, 8))
    assert torch.equal(again.eval()(x)[0], model.eval()(x)[0])


def test_resume_or_finetune_with_another_model_is_one_line(tmp_path):
    folder, _ = saved_run(tmp_path)
    ckpt = load_checkpoint(str(folder / "ckpt.pt"))
    for how, message in (("resume", "cannot resume"), (f"ckpt:{folder}", "cannot finetune")):
        with pytest.raises(ValueError, match=message + r" with a different model: n_layer=2 \(checkpoint: 1\); "
                                             r"drop these overrides or start a new --out_dir"):
            start_from(how, run_args(n_layer=2), {"n_layer": 2}, CHAR_META, "d", ckpt)


def test_resume_or_finetune_may_change_how_the_loss_is_computed(tmp_path):
    folder, _ = saved_run(tmp_path, fused_loss="on")
    ckpt = load_checkpoint(str(folder / "ckpt.pt"))
    for how in ("resume", f"ckpt:{folder}"):  # the same weights, the head's loss computed another way
        args, _ = start_from(how, run_args(fused_loss="off"), {"fused_loss": "off"}, CHAR_META, "d", ckpt)
        assert args["fused_loss"] == "off" and args["n_layer"] == 1


def test_ckpt_path_takes_the_weights_only(tmp_path):
    folder, model = saved_run(tmp_path)
    for path in (folder, folder / "ckpt.pt"):  # a run folder or the file itself
        args, got = start_from(f"ckpt:{path}", run_args(dropout=0.1), {"dropout": 0.1}, CHAR_META, "d")
        assert set(got) == {"model"} and args["dropout"] == 0.1
        assert all(torch.equal(got["model"][k], v) for k, v in model.state_dict().items())
    with pytest.raises(ValueError, match=r"no checkpoint at .*nowhere.pt; train one first"):
        start_from(f"ckpt:{tmp_path / 'nowhere.pt'}", run_args(), {}, CHAR_META, "d")
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match=r"cannot read checkpoint .*bad.pt"):
        start_from(f"ckpt:{tmp_path / 'bad.pt'}", run_args(), {}, CHAR_META, "d")


def tiny_hf_folder(path, vocab=70):
    from transformers import GPT2Config, GPT2LMHeadModel
    torch.manual_seed(0)
    GPT2LMHeadModel(GPT2Config(n_layer=1, n_head=2, n_embd=32, n_positions=32, vocab_size=vocab)).save_pretrained(path)
    return path


def test_hugging_face_folder_brings_its_architecture(tmp_path):
    folder = tiny_hf_folder(tmp_path / "hf")
    args, got = start_from(f"hf:{folder}", run_args(block_size=16, attn_impl="manual"),
                           {"block_size": 16, "attn_impl": "manual"}, CHAR_META, "d")
    assert (args["n_embd"], args["vocab_size"], args["block_size"], args["attn_impl"]) == (32, 70, 16, "manual")
    assert set(got) == {"model"} and got["model"]["transformer.wpe.weight"].shape == (16, 32)  # cropped
    GPT(GPTConfig(**args)).load_state_dict(got["model"])
    with pytest.raises(ValueError, match=r"brings its own architecture; drop --n_layer"):
        start_from(f"hf:{folder}", run_args(n_layer=3), {"n_layer": 3}, CHAR_META, "d")
    with pytest.raises(ValueError, match=r"d has 65 token ids but hf:.* knows 60; prepare the data"):
        start_from(f"hf:{tiny_hf_folder(tmp_path / 'small', vocab=60)}", run_args(), {}, CHAR_META, "d")
    with pytest.raises(ValueError, match=r"is not a Hugging Face model folder \(no config.json\)"):
        start_from(f"hf:{tmp_path / 'empty'}", run_args(), {}, CHAR_META, "d")


def test_gpt2_needs_gpt2_tokens_and_unknown_names_list_the_choices():
    with pytest.raises(ValueError, match=r"gpt2 reads GPT-2 BPE tokens but data/x holds char tokens"):
        start_from("gpt2", run_args(), {}, CHAR_META, "data/x")
    with pytest.raises(ValueError, match=r"unknown --init_from='gtp2'; use 'scratch', 'resume', 'ckpt:PATH', "
                                         r"'gpt2', 'gpt2-medium', 'gpt2-large', 'gpt2-xl' or 'hf:PATH'"):
        start_from("gtp2", run_args(), {}, BPE_META, "d")
    assert GPT2_NAMES == ("gpt2", "gpt2-medium", "gpt2-large", "gpt2-xl")


def test_model_from_checkpoint_rebuilds_what_was_saved(tmp_path):
    folder, model = saved_run(tmp_path, use_swiglu=True)
    again = model_from_checkpoint(load_checkpoint(os.path.join(folder, "ckpt.pt")))
    assert again.config.use_swiglu and again.config.vocab_size == 65
    x = torch.randint(0, 65, (2, 8))
    assert torch.equal(again.eval()(x)[0], model.eval()(x)[0])


def test_load_model_gives_the_run_its_tokenizer_and_refuses_unknown_names(tmp_path):
    from checkpoint import load_model
    from data.common import write_meta
    folder, model = saved_run(tmp_path)
    write_meta(str(folder), CHAR_META)  # the tokenizer beside the checkpoint
    again, tok, run = load_model("resume", str(folder))
    assert run == {"config": {}, "iter_num": 7, "tokenizer": None} and tok.vocab_size == 65
    x = torch.randint(0, 65, (1, 8))
    assert torch.equal(again.eval()(x)[0], model.eval()(x)[0])
    with pytest.raises(ValueError, match=r"unknown --init_from='gtp2'; use 'resume', 'gpt2'"):
        load_model("gtp2", str(folder))
