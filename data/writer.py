"""
Token streams written into a dataset folder (its format: data/common.py), for data/*/prepare.py.
A corpus that fits in memory goes through write_dataset() (write_char_dataset() for a character
vocabulary). Corpora larger than memory (the Pile, OpenWebText, WikiText-103) are tokenized in
pieces by worker processes that keep the input's order (ordered_pool_map) and appended to the
bins as they come through a TokenWriter, so a prepare script's memory does not grow with its
input; document_text says which records hold a usable document, and SKIP_REASONS why the others
were skipped (meta.json counts them). Every id is checked against the vocabulary before the cast
to the file's dtype.
"""

import multiprocessing
import os
import shutil
from collections import deque

import numpy as np

from data.common import DataError, dtype_for_vocab, retract_meta, token_array, write_meta


def write_tokens(path, ids, dtype, vocab_size=None, tokenizer=None):
    """Write token ids to path as raw dtype, through a temp file so a crash leaves no half file;
    ids must be below vocab_size (default: all that dtype holds). Returns (how many ids, the largest id)."""
    arr = token_array(ids, vocab_size or np.iinfo(dtype).max + 1, dtype, tokenizer)
    tmp = path + ".tmp"
    arr.tofile(tmp)
    os.replace(tmp, path)
    return len(arr), int(arr.max()) if len(arr) else -1


def write_dataset(out_dir, train_ids, val_ids, tokenizer, vocab_size, streams=None, **extra):
    """Write train.bin, val.bin, one NAME.bin for each NAME: ids of streams (counted in meta.json as
    NAME_tokens), then meta.json (the old one removed first: retract_meta); returns the meta dict."""
    os.makedirs(out_dir, exist_ok=True)
    retract_meta(out_dir)
    dtype = dtype_for_vocab(vocab_size)
    counts, top = {}, -1
    for name, ids in {"train": train_ids, "val": val_ids, **(streams or {})}.items():
        n, largest = write_tokens(os.path.join(out_dir, f"{name}.bin"), ids, dtype, vocab_size, tokenizer)
        counts[f"{name}_tokens"], top = n, max(top, largest)
    meta = dict(vocab_size=vocab_size, dtype=dtype, tokenizer=tokenizer, **counts, max_token_id=top, **extra)
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
    would read ahead as far as its pipe lets it.

    The workers are spawned (a fresh interpreter each), not forked: a fork copies every lock that
    another thread of this process holds at that moment (torch's, a tokenizer's, the logging
    module's) into a child where no thread will ever release it, and a worker that takes one hangs
    for good. So fn, initializer and items must pickle: fn and initializer defined at the top level
    of a module (a script's own functions are fine when it runs main() under __name__ == "__main__")."""
    if num_proc <= 1:
        if initializer is not None:
            initializer(*initargs)
        yield from map(fn, items)
        return
    with multiprocessing.get_context("spawn").Pool(num_proc, initializer, initargs) as pool:
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
        retract_meta(self.out_dir)  # the bins change one at a time below
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
