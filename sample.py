"""
Sample from a trained model.

    python sample.py --out_dir=out-shakespeare-char-cpu
    python sample.py --out_dir=out-shakespeare-char-cpu --start="ROMEO:" --num_samples=3 --stream=True
    python sample.py --out_dir=out-shakespeare-char-cpu --quantize=int8 --compile=True   # int8 weights
    python sample.py --out_dir=out --start=FILE:prompt.txt --temperature=0.8 --top_k=200

    python sample.py --init_from=gpt2-xl --start="What is the answer to life?"
    python sample.py --init_from=hf:path/to/gpt2-folder        # a local Hugging Face GPT-2

Text is encoded and decoded with the tokenizer the checkpoint records (checkpoint_tokenizer):
a --data_dir given beside it must hold the same one. A checkpoint from before that record uses
a meta.json or nanoGPT's meta.pkl in its folder, else in its dataset's folder (data/<dataset>/),
else, for a GPT-2-sized vocabulary, GPT-2's BPE, as nanoGPT assumes. A Hugging Face folder
(--init_from=hf:PATH) brings its own meta.json or tokenizer.json.

The samples are decoded sample_batch at a time, one batch row each (each row holds a KV cache
of block_size positions, so memory grows with the batch). Sample k draws from its own
generator, seeded seed + k, so its text is the same in any batch: --seed=1338 --num_samples=1
prints the second sample of --seed=1337 --num_samples=3.
"""

import sys

import torch

from checkpoint import load_model
from configurator import configure
from device import autocast_context, resolve_device, resolve_dtype, setup_device
from quantize import quantize_error, quantize_model

# ----------------------------------------------------------------------------- config
init_from = "resume"  # 'resume' (out_dir/ckpt.pt), 'gpt2', 'gpt2-medium', 'gpt2-large', 'gpt2-xl', or 'hf:PATH'
out_dir = "out"  # the folder with ckpt.pt
start = "\n"  # the prompt; "FILE:path" reads it from a file
num_samples = 3  # samples to print (sample k takes the generator seeded seed + k, whatever the batch)
sample_batch = 8  # samples decoded together at most: each row holds a block_size KV cache
max_new_tokens = 500  # tokens generated per sample
temperature = 0.8  # 1.0: the model's distribution; lower: safer; 0: greedy
top_k = 200  # keep only the k most likely tokens (0: all)
top_p = 1.0  # nucleus sampling: keep the most likely tokens up to this total probability
seed = 1337  # the sampling seed: the same seed gives the same text
device = "auto"  # 'auto' (cuda, then mps, then cpu), 'cpu', 'cuda', 'cuda:1', 'mps'
dtype = "auto"  # 'auto' (train.py's choice for the device), 'float32', 'bfloat16', 'float16'
compile = False  # torch.compile the one-token decoding step: a one-off compile, then faster tokens
use_cache = True  # KV cache: each new token costs one position, not the whole context
stream = False  # print the first sample's tokens as they come, then the others
quantize = "none"  # the weights for decoding: 'none' (fp32), 'bf16' or 'int8' (weight-only, per channel; quantize.py)
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


def first_row(steps, new, eot):
    """Row 0's new token ids as the batch decodes them, up to its end-of-text token; every
    step's (B, 1) tokens are appended to new, for the other rows."""
    ended = False
    for nxt in steps:
        new.append(nxt)
        if not ended:
            i = nxt[0].item()
            ended = i == eot
            yield i


def until_end(row, eot):
    """A row's new ids up to its first end-of-text token, kept (the batch goes on until every row
    has ended, and a finished row repeats it)."""
    return row[:row.index(eot) + 1] if eot is not None and eot in row else row


def main():
    device_ = resolve_device(device)
    setup_device(device_)
    dtype_ = resolve_dtype(dtype, device_)
    if error := quantize_error(quantize, device_):
        sys.exit(f"error: {error}")
    if num_samples < 1 or sample_batch < 1:
        sys.exit(f"error: --num_samples={num_samples} and --sample_batch={sample_batch}; give at least 1 of each")
    try:
        model, tok, _ = load_model(init_from, out_dir, data_dir)
    except (OSError, RuntimeError, ValueError) as e:
        sys.exit(f"error: {e}")
    model = quantize_model(model.to(device_).eval(), quantize)
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
    for first in range(0, num_samples, sample_batch):  # sample k is the same text in any batch
        n = min(sample_batch, num_samples - first)
        decode_batch(model, tok, prompt, ids, range(first, first + n), device_, dtype_, stream and first == 0)


def decode_batch(model, tok, prompt, ids, samples, device_, dtype_, stream_first):
    """Decode the samples (their numbers k) together, one batch row each, and print them; with
    stream_first, the first one's tokens as they come."""
    x = torch.tensor(ids, dtype=torch.long, device=device_)[None, :].repeat(len(samples), 1)  # (B, T)
    generators = [torch.Generator(device=device_).manual_seed(seed + k) for k in samples]
    kwargs = dict(temperature=temperature, top_k=top_k or None, top_p=top_p, use_cache=use_cache,
                  generator=generators, eos_token=tok.eot)
    new = []  # each step's (B, 1) tokens
    with torch.no_grad(), autocast_context(device_, dtype_):
        steps = model.stream(x, max_new_tokens, **kwargs)
        if stream_first:
            print(prompt, end="", flush=True)
            for text in text_pieces(tok, first_row(steps, new, tok.eot)):
                print(text, end="", flush=True)
            print("\n---------------")
        else:
            new = list(steps)
    rows = torch.cat(new, dim=1).tolist() if new else [[]] * len(samples)  # (B, new tokens)
    for row in rows[1 if stream_first else 0:]:
        print(tok.decode(ids + until_end(row, tok.eot)))
        print("---------------")

if __name__ == "__main__":
    configure(globals())
    main()
