"""
What every dataset shares: the folder's format, and its checks where it is written and opened.

A prepared dataset is a folder data/<name>/ holding
    train.bin, val.bin   raw token ids, uint16 (or uint32 when the vocabulary needs it),
                         read with np.memmap: no header, no pickle
    meta.json            what the ids mean: {"vocab_size", "dtype", "tokenizer": {...},
                         "train_tokens", "val_tokens", ...}
The "tokenizer" entry is one of
    {"kind": "char", "chars": "..."}            id i is the i-th character
    {"kind": "tiktoken", "name": "gpt2"}        any tiktoken encoding
    {"kind": "hf", "file": "tokenizer.json"}    a trained Hugging Face tokenizer, beside meta.json
A checkpoint records its dataset's tokenizer (data/tokenizer.py's tokenizer_record: the above, with
a tokenizer.json's content), so a model can be sampled, evaluated and exported from its checkpoint alone.

prepare.py scripts write through write_dataset() or TokenWriter (data/writer.py); train.py,
sample.py and friends read through load_meta() and Tokenizer (data/tokenizer.py; batches:
data/loader.py). Raw text comes in through data/fetch.py.
"""

import json
import os

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


def retract_meta(out_dir):
    """Remove meta.json before a dataset's bins are rewritten: meta.json is written last, so a write
    stopped part-way leaves a folder that asks to be prepared again, never one whose meta.json
    describes other bins."""
    if os.path.exists(os.path.join(out_dir, "meta.json")):
        os.remove(os.path.join(out_dir, "meta.json"))


def write_meta(out_dir, meta):
    """meta.json through a temp file, so a crash leaves the old file or the new one, never half of one."""
    path = os.path.join(out_dir, "meta.json")
    with open(path + ".tmp", "w", encoding="utf-8") as f:
        json.dump(meta, f, indent=1, ensure_ascii=False)
    os.replace(path + ".tmp", path)


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


def describe_tokenizer(ident):
    """A tokenizer_identity (data/tokenizer.py) in a few words, for error messages (token_array's here)."""
    if ident.get("kind") == "char":
        chars = ident.get("chars") or ""
        return f"{len(chars)} characters {chars[:12]!r}{'...' if len(chars) > 12 else ''}"
    if ident.get("kind") == "tiktoken":
        return f"tiktoken's {ident.get('name')} BPE"
    if ident.get("kind") == "hf":
        return f"a tokenizer.json of {ident.get('vocab_size')} ids (sha256 {(ident.get('sha256') or '?')[:12]})"
    return f"{ident.get('kind')} tokens"
