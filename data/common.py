"""
What every dataset shares: the on-disk layout, the tokenizers, and downloads.

A prepared dataset is a folder data/<name>/ holding
    train.bin, val.bin   raw token ids, uint16 (or uint32 when the vocabulary needs it),
                         read with np.memmap: no header, no pickle
    meta.json            what the ids mean: {"vocab_size", "dtype", "tokenizer": {...},
                         "train_tokens", "val_tokens", ...}
The "tokenizer" entry is one of
    {"kind": "char", "chars": "..."}            id i is the i-th character
    {"kind": "tiktoken", "name": "gpt2"}        any tiktoken encoding
    {"kind": "hf", "file": "tokenizer.json"}    a trained Hugging Face tokenizer, beside meta.json

prepare.py scripts write through write_dataset(); train.py, sample.py and friends read
through load_meta() and Tokenizer.
"""

import hashlib
import json
import os
import urllib.request

import numpy as np

DATA_ROOT = os.path.dirname(os.path.abspath(__file__))


def dataset_dir(dataset, data_dir=""):
    """Where a dataset lives: data_dir when given, else data/<dataset>/ in this repository."""
    return data_dir or os.path.join(DATA_ROOT, dataset)


def dtype_for_vocab(vocab_size):
    return "uint16" if vocab_size <= 2**16 else "uint32"


def write_tokens(path, ids, dtype):
    """Write token ids to path as raw dtype, through a temp file so a crash leaves no half file."""
    arr = np.asarray(ids, dtype=dtype)
    tmp = path + ".tmp"
    arr.tofile(tmp)
    os.replace(tmp, path)
    return len(arr)


def write_dataset(out_dir, train_ids, val_ids, tokenizer, vocab_size, **extra):
    """Write train.bin, val.bin and meta.json; returns the meta dict."""
    os.makedirs(out_dir, exist_ok=True)
    dtype = dtype_for_vocab(vocab_size)
    meta = dict(vocab_size=vocab_size, dtype=dtype, tokenizer=tokenizer,
                train_tokens=write_tokens(os.path.join(out_dir, "train.bin"), train_ids, dtype),
                val_tokens=write_tokens(os.path.join(out_dir, "val.bin"), val_ids, dtype), **extra)
    write_meta(out_dir, meta)
    return meta


def write_meta(out_dir, meta):
    with open(os.path.join(out_dir, "meta.json"), "w") as f:
        json.dump(meta, f, indent=1, ensure_ascii=False)


def load_meta(data_dir):
    """meta.json of a prepared dataset folder, with a clear error when it is not prepared."""
    path = os.path.join(data_dir, "meta.json")
    if not os.path.isfile(path):
        name = os.path.basename(os.path.normpath(data_dir))
        raise FileNotFoundError(f"dataset '{name}' is not prepared ({path} is missing); "
                                f"run: python data/{name}/prepare.py")
    with open(path) as f:
        meta = json.load(f)
    meta["_dir"] = data_dir
    return meta


def open_tokens(data_dir, split, meta):
    """The split's token ids as a read-only memmap (no copy into memory)."""
    return np.memmap(os.path.join(data_dir, f"{split}.bin"), dtype=np.dtype(meta["dtype"]), mode="r")


class Tokenizer:
    """encode(str) -> list[int] and decode(list[int]) -> str for any tokenizer kind of meta.json."""

    def __init__(self, spec, base_dir="."):
        self.kind = spec["kind"]
        self.eot = None  # end-of-text id, where the tokenizer has one
        if self.kind == "char":
            self.chars = spec["chars"]
            self.stoi = {c: i for i, c in enumerate(self.chars)}
        elif self.kind == "tiktoken":
            import tiktoken
            self.enc = tiktoken.get_encoding(spec["name"])
            self.eot = self.enc.eot_token
        elif self.kind == "hf":
            from tokenizers import Tokenizer as HFTokenizer
            self.enc = HFTokenizer.from_file(os.path.join(base_dir, spec["file"]))
            self.eot = self.enc.token_to_id(spec.get("eot", "<|endoftext|>"))
        else:
            raise ValueError(f"unknown tokenizer kind {self.kind!r} in meta.json")

    @classmethod
    def from_meta(cls, meta):
        return cls(meta["tokenizer"], meta.get("_dir", "."))

    def encode(self, text):
        if self.kind == "char":
            missing = sorted(set(text) - self.stoi.keys())
            if missing:
                raise ValueError(f"characters not in this model's vocabulary: {''.join(missing)!r}; "
                                 f"remove them from the prompt")
            return [self.stoi[c] for c in text]
        if self.kind == "tiktoken":
            return self.enc.encode(text, allowed_special={"<|endoftext|>"})
        return self.enc.encode(text).ids

    def decode(self, ids):
        ids = [int(i) for i in ids]
        if self.kind == "char":
            return "".join(self.chars[i] for i in ids)
        return self.enc.decode(ids)


def sha256_of(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def download(url, dest, sha256=None, timeout=30):
    """Fetch url to dest (skipped when dest already holds the right bytes). Raises
    ConnectionError with a one-line message when the network is unreachable."""
    if os.path.isfile(dest) and (sha256 is None or sha256_of(dest) == sha256):
        return dest
    tmp = dest + ".part"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r, open(tmp, "wb") as f:
            while chunk := r.read(1 << 20):
                f.write(chunk)
    except OSError as e:  # URLError, socket timeouts and DNS failures are all OSErrors
        if os.path.exists(tmp):
            os.remove(tmp)
        raise ConnectionError(f"could not download {url} ({e}); pass --input=PATH to use a local copy") from None
    if sha256 is not None and sha256_of(tmp) != sha256:
        os.remove(tmp)
        raise ValueError(f"{url} downloaded, but its sha256 is not {sha256}; the file changed or was damaged")
    os.replace(tmp, dest)
    return dest
