"""
Export a checkpoint for other tools.

    python export.py --out_dir=out-shakespeare --to=hf                  # writes out-shakespeare/hf/
    python export.py --out_dir=out --to=hf --export_dir=my-gpt2

--to=hf writes a Hugging Face GPT2LMHeadModel folder (config.json, model.safetensors), which
loads with transformers' GPT2LMHeadModel.from_pretrained(folder) and back into gptlab with
--init_from=hf:folder. Only checkpoints whose flags GPT-2 can express export: learned
positions, LayerNorm, a GELU MLP, plain multi-head dot-product attention. A model trained
with bias=False gets zero biases (the same function). The tokenizer goes along, from the
checkpoint itself (no dataset folder needed): a tokenizer.json is written out, a character vocabulary
as gptlab's meta.json, and GPT-2's BPE is written as vocab.json and merges.txt (with
tokenizer_config.json), from the very files tiktoken reads, so that
AutoTokenizer.from_pretrained(folder) works offline and splits text exactly as tiktoken does.
"""

import json
import os
import shutil
import sys
from dataclasses import fields

from checkpoint import checkpoint_tokenizer, load_checkpoint, run_folders
from configurator import configure
from hf_gpt2 import gpt2_config_to_hf, gpt2_incompatible, gpt2_state_dict_to_hf
from model import GPTConfig

# ----------------------------------------------------------------------------- config
out_dir = "out"  # the folder with ckpt.pt
to = "hf"  # the format: 'hf' (Hugging Face transformers GPT-2)
export_dir = ""  # where to write; "" means out_dir/<to>
data_dir = ""  # a dataset folder whose tokenizer to write (checked against the checkpoint's); "": the checkpoint's own
# ------------------------------------------------------------------------------

# GPT-2's BPE as OpenAI published it, and as tiktoken's 'gpt2' encoding reads it (the URLs and
# sha256 hashes are tiktoken's: tiktoken_ext/openai_public.py). encoder.json is what Hugging Face
# calls vocab.json, vocab.bpe its merges.txt. tiktoken keeps both in its cache (TIKTOKEN_CACHE_DIR)
# once it has loaded the encoding, so they are read from there without a download.
GPT2_TOKENIZER_FILES = {
    "vocab.json": ("https://openaipublic.blob.core.windows.net/gpt-2/encodings/main/encoder.json",
                   "196139668be63f3b5d6574427317ae82f612a97c5d1cdaf36ed2256dbf636783"),
    "merges.txt": ("https://openaipublic.blob.core.windows.net/gpt-2/encodings/main/vocab.bpe",
                   "1ce1664773c50f3e0cc8842619a93edc4624525b728b188a9e0be33b7726adc5"),
}
GPT2_BPE_NAMES = ("gpt2", "r50k_base")  # one vocabulary and one way of splitting, under two names


def write_gpt2_tokenizer(dest, model_max_length):
    """GPT-2's tokenizer files in dest, as Hugging Face's GPT2Tokenizer(Fast) loads them offline."""
    from tiktoken.load import read_file_cached
    for name, (url, sha256) in GPT2_TOKENIZER_FILES.items():
        try:
            data = read_file_cached(url, sha256)
        except Exception as e:  # offline without the cache: requests' or urllib's errors
            raise OSError(f"cannot read GPT-2's {os.path.basename(url)} ({type(e).__name__}); set TIKTOKEN_CACHE_DIR "
                          f"to the folder holding tiktoken's cache files") from None
        with open(os.path.join(dest, name), "wb") as f:
            f.write(data)
    eot = "<|endoftext|>"
    config = {"tokenizer_class": "GPT2Tokenizer", "model_max_length": model_max_length, "add_prefix_space": False,
              "bos_token": eot, "eos_token": eot, "unk_token": eot}
    with open(os.path.join(dest, "tokenizer_config.json"), "w") as f:
        json.dump(config, f, indent=1)
    with open(os.path.join(dest, "special_tokens_map.json"), "w") as f:
        json.dump({"bos_token": eot, "eos_token": eot, "unk_token": eot}, f, indent=1)


def export_hf(ckpt, dest, tok):
    """Write ckpt as a GPT2LMHeadModel folder at dest, with the tokenizer tok (a data.tokenizer.Tokenizer;
    None: none). Raises ValueError naming the flags that GPT-2 cannot express."""
    known = {f.name for f in fields(GPTConfig)}
    cfg = GPTConfig(**{k: v for k, v in ckpt["model_args"].items() if k in known})
    bad = gpt2_incompatible(cfg)
    if bad:
        raise ValueError(f"this model is not a GPT-2, so it cannot be a Hugging Face GPT2LMHeadModel: "
                         f"{', '.join(bad)} (GPT-2 needs these flags off)")
    from transformers import GPT2Config, GPT2LMHeadModel  # only this exporter needs transformers

    kind = tok.kind if tok else None
    gpt2_bpe = kind == "tiktoken" and tok.spec.get("name") in GPT2_BPE_NAMES
    eot = 50256 if gpt2_bpe else tok.eot if kind == "hf" else None
    hf_config = GPT2Config(**gpt2_config_to_hf(cfg), bos_token_id=eot, eos_token_id=eot)
    hf = GPT2LMHeadModel(hf_config)
    hf.load_state_dict(gpt2_state_dict_to_hf(ckpt["model"], cfg.vocab_size), strict=True)
    hf.save_pretrained(dest)  # safetensors
    if gpt2_bpe:
        write_gpt2_tokenizer(dest, cfg.block_size)
    elif kind == "hf":
        with open(os.path.join(dest, "tokenizer.json"), "w", encoding="utf-8") as f:
            f.write(tok.json)  # the dataset's file, byte for byte as the checkpoint or the dataset holds it
    elif kind == "char":
        with open(os.path.join(dest, "meta.json"), "w") as f:
            json.dump({"vocab_size": len(tok.chars), "tokenizer": {"kind": "char", "chars": tok.chars}}, f,
                      indent=1, ensure_ascii=False)


def main():
    if to != "hf":
        sys.exit(f"error: unknown --to={to!r}; the one format so far is 'hf'")
    dest = export_dir or os.path.join(out_dir, to)
    path = os.path.join(out_dir, "ckpt.pt")
    try:
        ckpt = load_checkpoint(path)
        try:  # the checkpoint's own tokenizer; a --data_dir given beside it must be the same
            tok, _, _ = checkpoint_tokenizer(ckpt.get("tokenizer"), ckpt["model_args"]["vocab_size"], path, data_dir,
                                             fallback=run_folders(out_dir, ckpt))
        except FileNotFoundError:
            tok = None  # an old checkpoint whose dataset is gone: the weights still export; say so below
        export_hf(ckpt, dest, tok)
    except (OSError, RuntimeError, ValueError) as e:
        sys.exit(f"error: {e}")
    print(f"wrote a Hugging Face GPT2LMHeadModel to {dest}")
    if tok is None:
        print("note: no tokenizer found (pass --data_dir=the dataset folder to include it)")
    elif tok.spec.get("name") in GPT2_BPE_NAMES:
        print(f"tokenizer: GPT-2 BPE (vocab.json, merges.txt): AutoTokenizer.from_pretrained({dest!r})")


if __name__ == "__main__":
    configure(globals())
    main()
