"""
Tokenizers: Tokenizer, one interface over every kind a meta.json names (char, tiktoken, hf: see
data/common.py); what identifies a tokenizer, recorded in every checkpoint so that a model is
never fed another tokenizer's ids (tokenizer_identity, tokenizer_record, same_tokenizer); a
model's tokenizer found from its folders, nanoGPT's meta.pkl included (find_meta); and what a
prepare script's --tokenizer names (tokenizer_from_arg).
"""

import os
import shutil

import numpy as np

from data.common import DataError, dtype_for_vocab, load_meta, token_array
from data.fetch import checksum_of


def load_nanogpt_meta_pkl(path):
    """nanoGPT's meta.pkl ({'vocab_size', 'itos', 'stoi'} of a character vocabulary) as a
    meta dict like load_meta's. A pickle runs code only through the classes and functions it
    names, so the unpickler here refuses every name: plain dicts, ints and strings need none."""
    import pickle  # only for reading nanoGPT's files; gptlab itself writes meta.json

    class PlainValuesOnly(pickle.Unpickler):
        def find_class(self, module, name):
            raise pickle.UnpicklingError(f"it names {module}.{name}, and a nanoGPT meta.pkl holds only plain values")

    try:
        with open(path, "rb") as f:
            meta = PlainValuesOnly(f).load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError) as e:
        raise ValueError(f"refusing to read {path}: {e}") from None
    itos = meta.get("itos") if isinstance(meta, dict) else None
    n = meta.get("vocab_size") if isinstance(meta, dict) else None
    if not isinstance(itos, dict) or not isinstance(n, int) or \
            sorted(itos) != list(range(n)) or not all(isinstance(c, str) and len(c) == 1 for c in itos.values()):
        raise ValueError(f"{path} is not a nanoGPT character vocabulary (vocab_size and itos of single characters)")
    chars = "".join(itos[i] for i in range(n))
    return {"vocab_size": n, "dtype": dtype_for_vocab(n), "tokenizer": {"kind": "char", "chars": chars}}


GPT2_BPE = {"kind": "tiktoken", "name": "gpt2"}


def find_meta(folders, vocab_size):
    """The tokenizer of a model, for sample.py and export.py, as (meta, the folder it is in): the
    first of folders holding a meta.json (or nanoGPT's meta.pkl, or a Hugging Face tokenizer.json);
    else GPT-2's BPE for a GPT-2-sized vocabulary, as nanoGPT assumes (folder None); else
    load_meta's error naming the dataset."""
    for folder in filter(None, folders):
        if os.path.isfile(os.path.join(folder, "meta.json")):
            return load_meta(folder), folder
        if os.path.isfile(os.path.join(folder, "meta.pkl")):
            return load_nanogpt_meta_pkl(os.path.join(folder, "meta.pkl")), folder
        if os.path.isfile(os.path.join(folder, "tokenizer.json")):
            return {"vocab_size": vocab_size, "tokenizer": {"kind": "hf", "file": "tokenizer.json"}}, folder
    if vocab_size in (50257, 50304):  # 50304: GPT-2's 50257 padded for speed
        return {"vocab_size": vocab_size, "tokenizer": GPT2_BPE}, None
    return load_meta(list(filter(None, folders))[-1])  # raises FileNotFoundError naming the prepare script


def tokenizer_identity(meta, data_dir):
    """What identifies a dataset's tokenizer, recorded in every checkpoint so that a model is
    never fed another tokenizer's ids: the kind and vocab_size, plus the characters (char), the
    encoding (tiktoken) or the sha256 of the tokenizer.json (hf)."""
    spec = meta["tokenizer"]
    ident = {"kind": spec.get("kind"), "vocab_size": meta.get("vocab_size")}
    if ident["kind"] == "char":
        ident["chars"] = spec.get("chars")
    elif ident["kind"] == "tiktoken":  # r50k_base is GPT-2's encoding under another name
        ident["name"] = {"r50k_base": "gpt2"}.get(spec.get("name"), spec.get("name"))
    elif ident["kind"] == "hf":
        file = os.path.join(data_dir or ".", spec.get("file", "tokenizer.json"))
        ident["sha256"] = checksum_of(file, "sha256") if os.path.isfile(file) else None
    return ident


def tokenizer_record(meta, data_dir):
    """What a checkpoint records of its dataset's tokenizer: tokenizer_identity, plus what rebuilds
    it without the dataset (a tokenizer.json's content and end-of-text token; the characters and
    the tiktoken name are in the identity already)."""
    record = tokenizer_identity(meta, data_dir)
    spec = meta["tokenizer"]
    if record["kind"] == "hf":
        file = os.path.join(data_dir or ".", spec.get("file", "tokenizer.json"))
        if os.path.isfile(file):
            with open(file, encoding="utf-8") as f:
                record["json"] = f.read()
        record["eot"] = spec.get("eot", "<|endoftext|>")
    return record


def same_tokenizer(a, b):
    """Do two tokenizer_identity records give the same ids to the same text?"""
    if a.get("kind") != b.get("kind"):
        return False
    key = {"char": "chars", "tiktoken": "name", "hf": "sha256"}.get(a.get("kind"))
    if key is None or a.get(key) is None or b.get(key) is None:  # nothing finer to compare
        return a.get("vocab_size") == b.get("vocab_size")
    return a[key] == b[key]


class Tokenizer:
    """Every tokenizer kind of meta.json behind one interface: encode(str) -> list[int] (a prompt:
    "<|endoftext|>" is the special token), decode(list[int]) -> str, encode_documents(texts,
    dtype) for prepare scripts, vocab_size and eot. The kind is switched on here and nowhere else.
    base_dir is the folder a Hugging Face tokenizer's file is in (the dataset's)."""

    def __init__(self, spec, base_dir="."):
        self.spec, self.kind = spec, spec["kind"]
        self.eot = None  # end-of-text id, where the tokenizer has one
        if self.kind == "char":
            self.chars = spec["chars"]
            self.stoi = {c: i for i, c in enumerate(self.chars)}
        elif self.kind == "tiktoken":
            import tiktoken
            try:
                self.enc = tiktoken.get_encoding(spec["name"])
            except OSError as e:  # tiktoken downloads an encoding's files on first use; offline that fails
                raise ConnectionError(f"could not load the tiktoken encoding {spec['name']} ({type(e).__name__}); "
                                      f"go online once, or set TIKTOKEN_CACHE_DIR to a folder holding its files") from None
            self.eot = self.enc.eot_token
        elif self.kind == "hf":
            from tokenizers import Tokenizer as HFTokenizer
            if "json" in spec:  # a checkpoint's record carries the file's content
                self.json = spec["json"]
            else:
                with open(os.path.join(base_dir, spec["file"]), encoding="utf-8") as f:
                    self.json = f.read()  # kept: a checkpoint or an export writes it out again
            self.enc = HFTokenizer.from_str(self.json)
            self.eot = self.enc.token_to_id(spec.get("eot", "<|endoftext|>"))
        else:
            raise ValueError(f"unknown tokenizer kind {self.kind!r} in meta.json")

    @classmethod
    def from_meta(cls, meta, data_dir="."):
        """The tokenizer of a dataset whose meta.json (meta) is in data_dir."""
        return cls(meta["tokenizer"], data_dir or ".")

    @classmethod
    def from_record(cls, record):
        """The tokenizer a checkpoint's record (tokenizer_record) describes, or None when the record
        cannot rebuild it (none at all, or a checkpoint from before records carried a tokenizer.json)."""
        kind = (record or {}).get("kind")
        if kind == "char" and record.get("chars"):
            return cls({"kind": "char", "chars": record["chars"]})
        if kind == "tiktoken" and record.get("name"):
            return cls({"kind": "tiktoken", "name": record["name"]})
        if kind == "hf" and record.get("json"):
            return cls({"kind": "hf", "json": record["json"], "eot": record.get("eot", "<|endoftext|>")})
        return None

    @property
    def vocab_size(self):
        if self.kind == "char":
            return len(self.chars)
        if self.kind == "tiktoken":
            return self.enc.n_vocab
        return self.enc.get_vocab_size(with_added_tokens=True)

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

    def encode_ordinary(self, texts):
        """A list of texts -> one list of ids each, reading every text as ordinary text: a literal
        "<|endoftext|>" inside one is just characters to tiktoken (the Hugging Face tokenizers
        always match their special tokens)."""
        if self.kind == "char":
            return [self.encode(t) for t in texts]
        if self.kind == "tiktoken":
            return [self.enc.encode_ordinary(t) for t in texts]  # one thread: parallelism comes from processes
        return [e.ids for e in self.enc.encode_batch(texts, add_special_tokens=False)]

    def encode_documents(self, texts, dtype):
        """Encode texts, each followed by the end-of-text token, into one array.
        Returns (ids (N,) of dtype, tokens per document (D,) int64, end-of-text included)."""
        flat, lens = [], []
        for ids in self.encode_ordinary(texts):
            flat += ids
            flat.append(self.eot)
            lens.append(len(ids) + 1)
        return token_array(flat, np.iinfo(dtype).max + 1, dtype, self.spec), np.array(lens, dtype=np.int64)


def tokenizer_from_arg(name_or_file, out_dir):
    """What --tokenizer names: a tiktoken encoding (gpt2, r50k_base, cl100k_base, ...) or a
    trained Hugging Face tokenizer.json, which is copied into out_dir so that the dataset
    carries its own tokenizer. Returns (spec for meta.json, Tokenizer)."""
    if os.path.isfile(name_or_file):
        os.makedirs(out_dir, exist_ok=True)
        dest = os.path.join(out_dir, "tokenizer.json")
        if not (os.path.exists(dest) and os.path.samefile(name_or_file, dest)):
            shutil.copyfile(name_or_file, dest)
        spec = {"kind": "hf", "file": "tokenizer.json"}
        try:
            tok = Tokenizer(spec, out_dir)
        except Exception as e:  # the tokenizers library raises a bare Exception for a bad file
            raise DataError(f"{name_or_file} is not a Hugging Face tokenizer.json ({str(e).splitlines()[0]})") from None
    else:
        import tiktoken
        if name_or_file not in tiktoken.list_encoding_names():
            raise DataError(f"--tokenizer={name_or_file} is neither a file nor a tiktoken encoding "
                            f"({', '.join(tiktoken.list_encoding_names())})")
        spec = {"kind": "tiktoken", "name": name_or_file}
        try:
            tok = Tokenizer(spec)
        except ConnectionError as e:
            raise ConnectionError(f"{e}, or pass --tokenizer=path/to/tokenizer.json") from None
    if tok.eot is None:
        raise DataError(f"tokenizer {name_or_file} has no <|endoftext|> token to separate documents; "
                        f"train it with <|endoftext|> as a special token")
    return spec, tok
