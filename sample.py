"""
Sample from a trained model.

    python sample.py --out_dir=out-shakespeare-char-cpu
    python sample.py --out_dir=out-shakespeare-char-cpu --start="ROMEO:" --num_samples=3 --stream=True
    python sample.py --out_dir=out --start=FILE:prompt.txt --temperature=0.8 --top_k=200

    python sample.py --init_from=gpt2-xl --start="What is the answer to life?"
    python sample.py --init_from=hf:path/to/gpt2-folder        # a local Hugging Face GPT-2

Text is encoded and decoded with the tokenizer the checkpoint's dataset was prepared with:
--data_dir, else a meta.json or nanoGPT's meta.pkl in the checkpoint folder, else in the
dataset folder (data/<dataset>/); a Hugging Face folder's meta.json or tokenizer.json. A
GPT-2-sized vocabulary without any of these is GPT-2's BPE, as nanoGPT assumes.
"""

import sys

import torch

from checkpoint import load_model
from configurator import configure
from device import autocast_context, resolve_device, resolve_dtype, setup_device

# ----------------------------------------------------------------------------- config
init_from = "resume"  # 'resume' (out_dir/ckpt.pt), 'gpt2', 'gpt2-medium', 'gpt2-large', 'gpt2-xl', or 'hf:PATH'
out_dir = "out"  # the folder with ckpt.pt
start = "\n"  # the prompt; "FILE:path" reads it from a file
num_samples = 3  # independent samples from the same prompt
max_new_tokens = 500  # tokens generated per sample
temperature = 0.8  # 1.0: the model's distribution; lower: safer; 0: greedy
top_k = 200  # keep only the k most likely tokens (0: all)
top_p = 1.0  # nucleus sampling: keep the most likely tokens up to this total probability
seed = 1337  # the sampling seed: the same seed gives the same text
device = "auto"  # 'auto' (cuda, then mps, then cpu), 'cpu', 'cuda', 'cuda:1', 'mps'
dtype = "auto"  # 'auto' (train.py's choice for the device), 'float32', 'bfloat16', 'float16'
compile = False  # torch.compile the one-token decoding step: a one-off compile, then faster tokens
use_cache = True  # KV cache: each new token costs one position, not the whole context
stream = False  # print tokens as they come (first sample only, then the rest)
data_dir = ""  # where the tokenizer's meta.json (or nanoGPT's meta.pkl) is, if not found by itself
# ------------------------------------------------------------------------------


def text_pieces(tok, ids):
    """The text of a stream of token ids, piece by piece as they come, each token decoded once
    (not the whole continuation again at every token). A BPE token may hold part of a character's
    UTF-8 bytes: its piece waits for the tokens that complete it (at most 4 bytes, so 4 tokens)."""
    pending = []
    for i in ids:
        pending.append(i)
        text = tok.decode(pending)
        if not text.endswith("\ufffd") or len(pending) >= 4:
            yield text
            pending = []
    if pending:
        yield tok.decode(pending)


def main():
    device_ = resolve_device(device)
    setup_device(device_)
    dtype_ = resolve_dtype(dtype, device_)
    try:
        model, tok, _ = load_model(init_from, out_dir, data_dir)
    except (OSError, RuntimeError, ValueError) as e:
        sys.exit(f"error: {e}")
    model = model.to(device_).eval()
    if compile:  # CUDA graphs on a GPU; the inductor CPU backend here
        model.compile_decoding(mode="reduce-overhead" if device_.startswith("cuda") else None)

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
                for text in text_pieces(tok, (nxt[0].item() for nxt in model.stream(x, max_new_tokens, **kwargs))):
                    print(text, end="", flush=True)
                print("\n---------------")
            else:
                y = model.generate(x, max_new_tokens, **kwargs)
                print(tok.decode(y[0].tolist()))
                print("---------------")


if __name__ == "__main__":
    configure(globals())
    main()
