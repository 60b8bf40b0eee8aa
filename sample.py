"""
Sample from a trained model.

    python sample.py --out_dir=out-shakespeare-char-cpu
    python sample.py --out_dir=out-shakespeare-char-cpu --start="ROMEO:" --num_samples=3 --stream=True
    python sample.py --out_dir=out --start=FILE:prompt.txt --temperature=0.8 --top_k=200

Text is encoded and decoded with the tokenizer the checkpoint's dataset was prepared with
(data/<dataset>/meta.json).
"""

import os
import sys

import torch

from configurator import configure
from data.common import Tokenizer, dataset_dir, load_meta
from train import autocast_context, load_checkpoint, model_from_checkpoint, resolve_device, resolve_dtype

# ----------------------------------------------------------------------------- config
out_dir = "out"  # the folder with ckpt.pt
start = "\n"  # the prompt; "FILE:path" reads it from a file
num_samples = 3
max_new_tokens = 500
temperature = 0.8  # 1.0: the model's distribution; lower: safer; 0: greedy
top_k = 200  # keep only the k most likely tokens (0: all)
top_p = 1.0  # nucleus sampling: keep the most likely tokens up to this total probability
seed = 1337
device = "auto"
dtype = "auto"
compile = False
use_cache = True  # KV cache: each new token costs one position, not the whole context
stream = False  # print tokens as they come (first sample only, then the rest)
data_dir = ""  # where the tokenizer's meta.json is, if not the checkpoint's dataset folder
# ------------------------------------------------------------------------------


def main():
    device_ = resolve_device(device)
    dtype_ = resolve_dtype(dtype, device_)
    try:
        ckpt = load_checkpoint(os.path.join(out_dir, "ckpt.pt"), device_)
        cfg = ckpt.get("config", {})
        meta = load_meta(dataset_dir(cfg.get("dataset", ""), data_dir or cfg.get("data_dir", "")))
    except (FileNotFoundError, RuntimeError) as e:
        sys.exit(f"error: {e}")
    model = model_from_checkpoint(ckpt).to(device_).eval()
    if compile:
        model = torch.compile(model)
    tok = Tokenizer.from_meta(meta)

    prompt = start
    if prompt.startswith("FILE:"):
        with open(prompt[5:], encoding="utf-8") as f:
            prompt = f.read()
    try:
        ids = tok.encode(prompt)
    except ValueError as e:
        sys.exit(f"error: {e}")
    if not ids:
        sys.exit("error: the prompt is empty; give --start some text")
    x = torch.tensor(ids, dtype=torch.long, device=device_)[None, ...]  # (1, T)
    generator = torch.Generator(device=device_).manual_seed(seed)
    kwargs = dict(temperature=temperature, top_k=top_k or None, top_p=top_p, use_cache=use_cache,
                  generator=generator, eos_token=tok.eot)
    with torch.no_grad(), autocast_context(device_, dtype_):
        for k in range(num_samples):
            if stream:
                print(prompt, end="", flush=True)
                for nxt in model.stream(x, max_new_tokens, **kwargs):
                    print(tok.decode(nxt[0].tolist()), end="", flush=True)
                print("\n---------------")
            else:
                y = model.generate(x, max_new_tokens, **kwargs)
                print(tok.decode(y[0].tolist()))
                print("---------------")


if __name__ == "__main__":
    configure(globals())
    main()
