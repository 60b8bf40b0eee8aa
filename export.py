"""
Export a checkpoint for other tools.

    python export.py --out_dir=out-shakespeare --to=hf                  # writes out-shakespeare/hf/
    python export.py --out_dir=out --to=hf --export_dir=my-gpt2

--to=hf writes a Hugging Face GPT2LMHeadModel folder (config.json, model.safetensors), which
loads with transformers' GPT2LMHeadModel.from_pretrained(folder) and back into gptlab with
--init_from=hf:folder. Only checkpoints whose flags GPT-2 can express export: learned
positions, LayerNorm, a GELU MLP, plain multi-head dot-product attention. A model trained
with bias=False gets zero biases (the same function). The tokenizer goes along where there
is a file for it: a dataset's tokenizer.json is copied, a character vocabulary is written
as gptlab's meta.json; GPT-2's BPE needs nothing (AutoTokenizer.from_pretrained("gpt2")).
"""

import json
import os
import shutil
import sys
from dataclasses import fields

from checkpoint import load_checkpoint, tokenizer_folders
from configurator import configure
from data.common import GPT2_BPE, Tokenizer, find_meta
from model import GPTConfig, gpt2_config_to_hf, gpt2_incompatible, gpt2_state_dict_to_hf

# ----------------------------------------------------------------------------- config
out_dir = "out"  # the folder with ckpt.pt
to = "hf"  # the format: 'hf' (Hugging Face transformers GPT-2)
export_dir = ""  # where to write; "" means out_dir/<to>
data_dir = ""  # the dataset folder with the tokenizer, if not the checkpoint's own
# ------------------------------------------------------------------------------


def export_hf(ckpt, dest, meta, meta_dir=None):
    """Write ckpt as a GPT2LMHeadModel folder at dest, with the tokenizer of meta (found in
    meta_dir; None: no tokenizer). Raises ValueError naming the flags that GPT-2 cannot express."""
    known = {f.name for f in fields(GPTConfig)}
    cfg = GPTConfig(**{k: v for k, v in ckpt["model_args"].items() if k in known})
    bad = gpt2_incompatible(cfg)
    if bad:
        raise ValueError(f"this model is not a GPT-2, so it cannot be a Hugging Face GPT2LMHeadModel: "
                         f"{', '.join(bad)} (GPT-2 needs these flags off)")
    from transformers import GPT2Config, GPT2LMHeadModel  # only this exporter needs transformers

    kind = meta["tokenizer"]["kind"] if meta else None
    eot = 50256 if kind and meta["tokenizer"] == GPT2_BPE else Tokenizer.from_meta(meta, meta_dir).eot if kind == "hf" else None
    hf_config = GPT2Config(**gpt2_config_to_hf(cfg), bos_token_id=eot, eos_token_id=eot)
    hf = GPT2LMHeadModel(hf_config)
    hf.load_state_dict(gpt2_state_dict_to_hf(ckpt["model"], cfg.vocab_size), strict=True)
    hf.save_pretrained(dest)  # safetensors
    if kind == "hf":
        shutil.copyfile(os.path.join(meta_dir, meta["tokenizer"]["file"]), os.path.join(dest, "tokenizer.json"))
    elif kind == "char":
        with open(os.path.join(dest, "meta.json"), "w") as f:
            json.dump({"vocab_size": meta["vocab_size"], "tokenizer": meta["tokenizer"]}, f, indent=1, ensure_ascii=False)


def main():
    if to != "hf":
        sys.exit(f"error: unknown --to={to!r}; the one format so far is 'hf'")
    dest = export_dir or os.path.join(out_dir, to)
    try:
        ckpt = load_checkpoint(os.path.join(out_dir, "ckpt.pt"))
        try:
            meta, meta_dir = find_meta(tokenizer_folders(out_dir, ckpt, data_dir), ckpt["model_args"]["vocab_size"])
        except FileNotFoundError:
            meta, meta_dir = None, None  # the weights still export; say so below
        export_hf(ckpt, dest, meta, meta_dir)
    except (OSError, RuntimeError, ValueError) as e:
        sys.exit(f"error: {e}")
    print(f"wrote a Hugging Face GPT2LMHeadModel to {dest}")
    if meta is None:
        print("note: no tokenizer found (pass --data_dir=the dataset folder to include it)")
    elif meta["tokenizer"] == GPT2_BPE:
        print('tokenizer: GPT-2 BPE, AutoTokenizer.from_pretrained("gpt2")')


if __name__ == "__main__":
    configure(globals())
    main()
