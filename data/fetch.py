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
A checkpoint records its dataset's tokenizer (tokenizer_record: the above, with a tokenizer.json's
content), so a model can be sampled, evaluated and exported from its checkpoint alone.

prepare.py scripts write through write_dataset() or TokenWriter; train.py, sample.py and
friends read through load_meta() and Tokenizer (batches: data/loader.py).
"""

import hashlib
import json
import multiprocessing
import os
import shutil
import urllib.request
from collections import deque

import numpy as np

DATA_ROOT = os.path.dirname(os.path.abspath(__file__))


def dataset_dir(dataset, data_dir=""):
    """Where a dataset lives: data_dir when given, else data/<dataset>/ in this repository."""
    return data_dir or os.path.join(DATA_ROOT, dataset)


def dtype_for_vocab(vocab_size):
    return "uint16" if vocab_size <= 2**16 else "uint32"


def token_array(ids, vocab_size, dtype, tokenizer=None):
    """ids as an array of dtype, checked before the cast: an id outside 0 .. vocab_size-1 would
    wrap around (70000 as uint16 is 4464) and pass every later check as another, valid token.
    Raises DataError naming the tokenizer (a meta.json "tokenizer" entry, or None)."""
    arr = np.asarray(ids)
    if arr.size:
        low, top = int(arr.min()), int(arr.max())
        if low < 0 or top >= vocab_size:
            name = f" of {describe_tokenizer(tokenizer)}" if tokenizer else ""
            raise DataError(f"token id {top if top >= vocab_size else low} is outside the vocabulary of "
                            f"{vocab_size} ids{name}; prepare with a tokenizer whose ids fit its vocab_size")
    return arr.astype(dtype, copy=False)


def write_tokens(path, ids, dtype, vocab_size=None, tokenizer=None):
    """Write token ids to path as raw dtype, through a temp file so a crash leaves no half file;
    ids must be below vocab_size (default: all that dtype holds). Returns (how many ids, the largest id)."""
    arr = token_array(ids, vocab_size or np.iinfo(dtype).max + 1, dtype, tokenizer)
    tmp = path + ".tmp"
    arr.tofile(tmp)
    os.replace(tmp, path)
    return len(arr), int(arr.max()) if len(arr) else -1


def write_dataset(out_dir, train_ids, val_ids, tokenizer, vocab_size, **extra):
    """Write train.bin, val.bin and meta.json; returns the meta dict."""
    os.makedirs(out_dir, exist_ok=True)
    dtype = dtype_for_vocab(vocab_size)
    n_train, max_train = write_tokens(os.path.join(out_dir, "train.bin"), train_ids, dtype, vocab_size, tokenizer)
    n_val, max_val = write_tokens(os.path.join(out_dir, "val.bin"), val_ids, dtype, vocab_size, tokenizer)
    meta = dict(vocab_size=vocab_size, dtype=dtype, tokenizer=tokenizer, train_tokens=n_train, val_tokens=n_val,
                max_token_id=max(max_train, max_val), **extra)
    write_meta(out_dir, meta)
    return meta


def write_char_dataset(out_dir, text, source):
    """A character-level dataset: the vocabulary is every character in text (sorted), the
    first 90% is train and the rest val. Prints the sizes; returns the meta dict."""
    print(f"length of the text in characters: {len(text):,}")
    chars = "".join(sorted(set(text)))
    print(f"vocab size: {len(chars)}")
    stoi = {c: i for i, c in enumerate(chars)}
    n = int(0.9 * len(text))
    meta = write_dataset(out_dir, [stoi[c] for c in text[:n]], [stoi[c] for c in text[n:]],
                         tokenizer={"kind": "char", "chars": chars}, vocab_size=len(chars), source=source)
    print(f"train has {meta['train_tokens']:,} tokens")
    print(f"val has {meta['val_tokens']:,} tokens")
    return meta


def write_meta(out_dir, meta):
    with open(os.path.join(out_dir, "meta.json"), "w") as f:
        json.dump(meta, f, indent=1, ensure_ascii=False)


class DataError(ValueError):
    """A problem with the user's data (an input file, or a prepared dataset folder); scripts
    print it as one `error:` line."""


def prepare_hint(data_dir):
    """What to run to (re)make a dataset folder: its data/<name>/prepare.py, which a folder outside
    data/ does not reveal."""
    rel = os.path.relpath(os.path.abspath(data_dir), DATA_ROOT)  # e.g. birthplace/pretrain -> birthplace
    if rel.startswith(".."):
        return f"prepare it again with its data/<name>/prepare.py --out_dir={data_dir}"
    return f"prepare it again: python data/{rel.split(os.sep)[0]}/prepare.py"


def load_meta(data_dir):
    """meta.json of a prepared dataset folder (or of a model folder, which has no bins and so no
    dtype), checked: a missing file (FileNotFoundError), or one that is not JSON, lacks vocab_size
    or tokenizer, gives a bad dtype, or records a largest token id at or beyond vocab_size
    (DataError), is one line that names the file and what to run."""
    path = os.path.join(data_dir, "meta.json")
    if not os.path.isfile(path):
        rel = os.path.relpath(os.path.abspath(data_dir), DATA_ROOT)
        if rel.startswith(".."):  # a folder outside data/: we cannot tell which script made it
            raise FileNotFoundError(f"{path} is missing; prepare {data_dir} with a data/<name>/prepare.py "
                                    f"--out_dir={data_dir}")
        raise FileNotFoundError(f"dataset '{rel}' is not prepared ({path} is missing); "
                                f"run: python data/{rel.split(os.sep)[0]}/prepare.py")
    redo = prepare_hint(data_dir)
    try:
        with open(path, encoding="utf-8") as f:
            meta = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        where = f" at line {e.lineno}" if isinstance(e, json.JSONDecodeError) else ""
        raise DataError(f"{path} is not valid JSON{where} (cut short or edited by hand); {redo}") from None
    missing = [k for k in ("vocab_size", "tokenizer") if not isinstance(meta, dict) or k not in meta]
    if missing:
        raise DataError(f"{path} lacks {', '.join(missing)}; {redo}")
    vocab, dtype, tok = meta["vocab_size"], meta.get("dtype", "uint32"), meta["tokenizer"]
    if dtype not in ("uint16", "uint32"):
        raise DataError(f"{path} gives dtype {dtype!r}, not 'uint16' or 'uint32'; {redo}")
    if not isinstance(vocab, int) or isinstance(vocab, bool) or not 0 < vocab <= np.iinfo(dtype).max + 1:
        raise DataError(f"{path} gives vocab_size {vocab!r}, not a count of ids that {dtype} can hold; {redo}")
    if not isinstance(tok, dict) or "kind" not in tok:
        raise DataError(f"{path} gives tokenizer {tok!r}, not a {{'kind': ...}} entry; {redo}")
    top = meta.get("max_token_id")  # prepare scripts record it; older folders lack it (batches are checked too)
    if top is not None and top >= vocab:
        raise DataError(f"{path} says its bins hold token ids up to {top}, but vocab_size is {vocab}; "
                        f"the bins and meta.json do not belong together: {redo}")
    return meta


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


def open_tokens(data_dir, split, meta):
    """The split's token ids as a read-only memmap (no copy into memory). A missing or empty
    file, one that is not a whole number of tokens, or one of another length than meta.json
    records, is a DataError naming the file."""
    path = os.path.join(data_dir, f"{split}.bin")
    if "dtype" not in meta:  # a model folder's meta.json: a tokenizer, no bins
        raise DataError(f"{os.path.join(data_dir, 'meta.json')} lacks dtype, so it describes no token files; "
                        f"{prepare_hint(data_dir)}")
    itemsize = np.dtype(meta["dtype"]).itemsize
    if not os.path.isfile(path):
        raise DataError(f"{path} is missing; {prepare_hint(data_dir)}")
    size = os.path.getsize(path)
    if size == 0:
        raise DataError(f"{path} is empty; {prepare_hint(data_dir)}")
    if size % itemsize:
        raise DataError(f"{path} is {size:,} bytes, not a whole number of {meta['dtype']} tokens ({itemsize} bytes "
                        f"each): it was cut short; {prepare_hint(data_dir)}")
    recorded = meta.get(f"{split}_tokens")
    if recorded is not None and recorded != size // itemsize:
        raise DataError(f"{path} holds {size // itemsize:,} tokens but its meta.json says {recorded:,}: one of "
                        f"them is from another preparation; {prepare_hint(data_dir)}")
    return np.memmap(path, dtype=np.dtype(meta["dtype"]), mode="r")


def check_token_ids(ids, vocab_size, path):
    """ids: a batch of token ids, on the CPU, before it reaches the device (where an id past the
    embedding is an IndexError, or on a GPU a device-side assert that names no file). Raises
    DataError naming path when an id is not below vocab_size."""
    top = int(ids.max())
    if top >= vocab_size or int(ids.min()) < 0:
        bad = top if top >= vocab_size else int(ids.min())
        raise DataError(f"{path} holds token id {bad}, outside the vocabulary of {vocab_size} in its meta.json; "
                        f"the bins and meta.json do not belong together: {prepare_hint(os.path.dirname(path))}")


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


def describe_tokenizer(ident):
    """A tokenizer_identity in a few words, for error messages."""
    if ident.get("kind") == "char":
        chars = ident.get("chars") or ""
        return f"{len(chars)} characters {chars[:12]!r}{'...' if len(chars) > 12 else ''}"
    if ident.get("kind") == "tiktoken":
        return f"tiktoken's {ident.get('name')} BPE"
    if ident.get("kind") == "hf":
        return f"a tokenizer.json of {ident.get('vocab_size')} ids (sha256 {(ident.get('sha256') or '?')[:12]})"
    return f"{ident.get('kind')} tokens"


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


def checksum_of(path, kind):
    """A file's hex digest: kind 'sha256', or 'git-blob', the id git gives the file's bytes (the
    sha1 of b"blob SIZE\\0" and the bytes: what `git hash-object FILE` prints), which a repository's
    tree lists for each file at each commit: a file can be pinned from that listing alone."""
    h = hashlib.sha256() if kind == "sha256" else hashlib.sha1(b"blob %d\0" % os.path.getsize(path))
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def matches(path, checksum):
    """Does the file match checksum, 'sha256:HEX' or 'git-blob:HEX'?"""
    kind, _, want = checksum.partition(":")
    if kind not in ("sha256", "git-blob"):
        raise ValueError(f"checksum {checksum!r}: give 'sha256:HEX' or 'git-blob:HEX'")
    return checksum_of(path, kind) == want


def download(url, dest, checksum, timeout=30):
    """Fetch url to dest, checked against checksum ('sha256:HEX' or 'git-blob:HEX'); skipped when
    dest already holds the right bytes. The bytes go to dest + '.part' first, so a failed or
    interrupted download leaves no dest. Raises ConnectionError with a one-line message when the
    network is unreachable, ValueError when the bytes do not match."""
    if os.path.isfile(dest) and matches(dest, checksum):
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
    if not matches(tmp, checksum):
        os.remove(tmp)
        raise ValueError(f"{url} downloaded, but it does not match {checksum}; the file changed or was damaged")
    os.replace(tmp, dest)
    return dest


# ----------------------------------------------------------- large corpora, streamed to disk
# Corpora larger than memory (the Pile, OpenWebText, WikiText-103) are tokenized in pieces
# and appended to the bins as they come through a TokenWriter, so a prepare script's memory
# does not grow with its input. These helpers are shared by data/*/prepare.py.

def check_input_file(path):
    """Raise DataError unless path is an existing, non-empty file."""
    if not os.path.isfile(path):
        raise DataError(f"{path} does not exist; check --input")
    if os.path.getsize(path) == 0:
        raise DataError(f"{path} is empty; give a file with some text in it")


def read_text_file(path):
    """All of a UTF-8 text file as a str (line endings untouched), or a DataError that says
    what is wrong with it."""
    check_input_file(path)
    with open(path, "rb") as f:
        data = f.read()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise DataError(f"{path} is not UTF-8 text (byte {e.start:,} is {data[e.start]:#04x}); "
                        f"convert it first, e.g. iconv -f latin1 -t utf-8") from None


# Don Quixote (Cervantes, tr. John Ormsby; Project Gutenberg eBook #996), read by data/don_char and
# data/don: pg996.txt as Project Gutenberg published it ("Most recently updated: March 30, 2023"),
# at a pinned commit of a mirror, so that the checksum keeps matching when Gutenberg re-issues it
DON_QUIXOTE_URL = ("https://raw.githubusercontent.com/P-C-R-P/ML-Don-Quixote/"
                   "5e4568f650fee0400b001f971b57fe3f132803e7/don_quixote.txt")
DON_QUIXOTE_CHECKSUM = "sha256:a1e5d836d41c6877014c7564ad43e0e95c58e76fcb5075f8ab946104a68c3e29"


def strip_gutenberg(text):
    """The book between Project Gutenberg's "*** START OF" and "*** END OF" marker lines, without
    the byte-order mark and the licence around it, with "\\n" line endings (Gutenberg's are CRLF)."""
    text = text.lstrip("\ufeff").replace("\r\n", "\n")
    start, end = text.find("*** START OF"), text.find("*** END OF")
    if start < 0 or end < start:
        raise DataError("no '*** START OF' / '*** END OF' lines: this is not a Project Gutenberg text file")
    start = text.index("\n", start) + 1  # the line after the START marker
    end = text.rfind("\n", 0, end) + 1  # the END marker's line begins here
    return text[start:end].strip() + "\n"


def read_gutenberg(url, checksum, input_path, out_dir):
    """The cleaned book (strip_gutenberg) from input_path, else downloaded once to out_dir/input.txt
    and checked against checksum. Raises DataError, ConnectionError or ValueError (a bad checksum)."""
    path = input_path
    if not path:
        os.makedirs(out_dir, exist_ok=True)
        path = download(url, os.path.join(out_dir, "input.txt"), checksum)
    return strip_gutenberg(read_text_file(path))


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


SKIP_REASONS = ("invalid_utf8", "invalid_json", "missing_key", "not_string", "empty")


def document_text(record, key):
    """(text, None) when record holds a usable document under key, else (None, reason) with
    reason one of SKIP_REASONS."""
    if not isinstance(record, dict) or key not in record:
        return None, "missing_key"
    text = record[key]
    if not isinstance(text, str):
        return None, "not_string"
    if not text:
        return None, "empty"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate, from a JSON escape such as "\ud800"
        return None, "invalid_utf8"
    return text, None


def ordered_pool_map(fn, items, num_proc, initializer=None, initargs=()):
    """Yield fn(item) for each item, in input order, computed by num_proc worker processes
    (num_proc=1: in this process). At most 2 * num_proc items are in flight at any time, so
    memory stays bounded however long items is and however slow the consumer; Pool.imap
    would read ahead as far as its pipe lets it."""
    if num_proc <= 1:
        if initializer is not None:
            initializer(*initargs)
        yield from map(fn, items)
        return
    with multiprocessing.Pool(num_proc, initializer, initargs) as pool:
        pending = deque()
        for item in items:
            pending.append(pool.apply_async(fn, (item,)))
            if len(pending) >= 2 * num_proc:
                yield pending.popleft().get()
        while pending:
            yield pending.popleft().get()


class TokenWriter:
    """Appends documents' token ids to train.bin and val.bin as they come, in order, with
    memory that does not depend on the corpus size. Everything goes to *.tmp files that
    finish() renames into place, so an interrupted run leaves the previous dataset whole.

        with TokenWriter(out_dir, vocab_size, spec) as w:
            for ids, doc_lens in pieces:
                w.write(ids, doc_lens)               # or split="val" for a corpus with its own
            meta = w.finish(spec, val_fraction=0.001)   # last 0.1% of documents -> val.bin
    """

    def __init__(self, out_dir, vocab_size, tokenizer=None):
        os.makedirs(out_dir, exist_ok=True)  # tokenizer: its meta.json entry, named when an id is out of range
        self.out_dir, self.vocab_size, self.dtype = out_dir, vocab_size, dtype_for_vocab(vocab_size)
        self.tokenizer = tokenizer
        self.path = {s: os.path.join(out_dir, f"{s}.bin") for s in ("train", "val")}
        self.files = {s: open(p + ".tmp", "wb") for s, p in self.path.items()}
        # where each train document ends (cumulative tokens, uint64), so that finish() can cut
        # the last documents off for validation without keeping anything in memory
        self.ends_path = os.path.join(out_dir, "train.ends.tmp")
        self.ends = open(self.ends_path, "wb")
        self.tokens = {"train": 0, "val": 0}
        self.docs = {"train": 0, "val": 0}
        self.max_id = -1  # the largest id written, recorded in meta.json for the loader to check

    def write(self, ids, doc_lens, split="train"):
        """ids: (N,) token ids of whole documents; doc_lens: (D,) their lengths, summing to N."""
        ids = token_array(ids, self.vocab_size, self.dtype, self.tokenizer)  # no copy when it already has the dtype
        ids.tofile(self.files[split])
        if len(ids):
            self.max_id = max(self.max_id, int(ids.max()))
        if split == "train":
            (self.tokens["train"] + np.cumsum(doc_lens, dtype=np.uint64)).tofile(self.ends)
        self.tokens[split] += len(ids)
        self.docs[split] += len(doc_lens)

    def finish(self, tokenizer, val_docs=0, val_fraction=0.0, **extra):
        """Close the files. With val_docs (a count) or val_fraction, the last documents of the
        train stream become val.bin (whole documents, order kept). Rename into place and
        write meta.json (extra keys included); returns the meta dict."""
        for f in (*self.files.values(), self.ends):
            f.close()
        if val_docs or val_fraction:
            self._move_tail_to_val(val_docs or max(1, round(val_fraction * self.docs["train"])))
        os.remove(self.ends_path)
        for split in ("train", "val"):
            if self.tokens[split] == 0:
                raise DataError(f"the {split} split is empty: there were no usable documents for it")
        for p in self.path.values():
            os.replace(p + ".tmp", p)
        meta = dict(vocab_size=self.vocab_size, dtype=self.dtype, tokenizer=tokenizer,
                    train_tokens=self.tokens["train"], val_tokens=self.tokens["val"],
                    train_documents=self.docs["train"], val_documents=self.docs["val"], max_token_id=self.max_id,
                    **extra)
        write_meta(self.out_dir, meta)
        return meta

    def _move_tail_to_val(self, n_val):
        n_docs = self.docs["train"]
        if n_val >= n_docs:
            raise DataError(f"only {n_docs} usable documents: too few to hold out {n_val} for validation "
                            f"and train on the rest; lower --val_docs/--val_fraction or give more data")
        cut = int(np.fromfile(self.ends_path, dtype=np.uint64, count=1, offset=8 * (n_docs - n_val - 1))[0])
        itemsize = np.dtype(self.dtype).itemsize
        with open(self.path["train"] + ".tmp", "rb+") as src, open(self.path["val"] + ".tmp", "ab") as dst:
            src.seek(cut * itemsize)
            shutil.copyfileobj(src, dst, 1 << 24)  # 16 MB at a time
            src.truncate(cut * itemsize)
        moved = self.tokens["train"] - cut
        self.tokens["train"], self.tokens["val"] = cut, self.tokens["val"] + moved
        self.docs["train"], self.docs["val"] = n_docs - n_val, self.docs["val"] + n_val

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None:  # a failed run: close and remove the unfinished files
            for f in (*self.files.values(), self.ends):
                f.close()
            for p in (*(p + ".tmp" for p in self.path.values()), self.ends_path):
                if os.path.exists(p):
                    os.remove(p)
        return False


def load_hf_dataset(name, config=None, split="train", data_files=None, streaming=False, num_proc=1):
    """datasets.load_dataset with one-line errors: a hub name (needs the network the first
    time), or a builder such as "json" or "text" with local data_files."""
    import datasets
    import huggingface_hub
    huggingface_hub.utils.logging.set_verbosity_error()  # offline, its retry warnings would bury our one line
    kw = {} if streaming else {"num_proc": num_proc if num_proc > 1 else None}
    try:
        return datasets.load_dataset(name, config, split=split, data_files=data_files or None, streaming=streaming, **kw)
    except (ConnectionError, OSError) as e:  # no network, or the hub is unreachable
        raise ConnectionError(f"could not load the Hugging Face dataset {name} ({type(e).__name__}: "
                              f"{(str(e).splitlines() or [''])[0]}); pass --input=PATH to use local files") from None
    except Exception as e:  # DatasetNotFoundError, a bad split or config name, ...: all one line
        raise DataError(f"could not load the Hugging Face dataset {name}: {type(e).__name__}: "
                        f"{(str(e).splitlines() or [''])[0]}") from None
