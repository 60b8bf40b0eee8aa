"""
OpenWebText (Gokaslan & Cohen 2019: 8M web documents, about 9B GPT-2 tokens) from the
Hugging Face hub, with GPT-2's tokenizer.

    python data/openwebtext/prepare.py                        # ~55 GB into the datasets cache
    python data/openwebtext/prepare.py --num_proc=16 --tokenizer=r50k_base
    python data/openwebtext/prepare.py --hf_dataset=json --input=owt.jsonl   # local files, same code

datasets.load_dataset reads it, Dataset.map tokenizes it in --num_proc processes (the ids are
cached on disk as Arrow files, as uint16 or uint32), and the ids are streamed from there, in
order, into train.bin / val.bin through the writer every prepare script shares, so memory
stays flat. The last --val_fraction of the documents become val.bin (nanoGPT held out a
random 0.05%; the last ones keep the writer streaming). Documents whose text is missing,
not a string or empty are skipped and counted in meta.json.

nanoGPT reports train.bin ~17 GB (9,035,582,198 tokens) and val.bin ~8.5 MB (4,434,897).
"""

import argparse
import os
import sys
from collections import Counter

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
from data.common import DataError, dtype_for_vocab  # noqa: E402
from data.fetch import load_hf_dataset  # noqa: E402
from data.tokenizer import Tokenizer, tokenizer_from_arg  # noqa: E402
from data.writer import SKIP_REASONS, TokenWriter, document_text  # noqa: E402

_worker = {}  # the Tokenizer of this worker process, built on first use


def tokenize_batch(batch, spec, base_dir, text_key, dtype):
    """Dataset.map function: {text_key: [texts]} -> {"ids": [ids + end-of-text, or [] when
    skipped], "skip": [reason, or ""]}."""
    if "tok" not in _worker:
        _worker["tok"] = Tokenizer(spec, base_dir)
    texts, reasons = [], []
    for value in batch[text_key]:
        text, reason = document_text({text_key: value}, text_key)
        reasons.append(reason or "")
        if text is not None:
            texts.append(text)
    flat, doc_lens = _worker["tok"].encode_documents(texts, dtype)
    docs = iter(np.split(flat, np.cumsum(doc_lens)[:-1]))  # (N,) -> one array per kept document
    return {"ids": [np.zeros(0, dtype) if r else next(docs) for r in reasons], "skip": reasons}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--hf_dataset", default="Skylion007/openwebtext", help="hub name, or a builder (json, text) with --input")
    ap.add_argument("--hf_config", help="the dataset's configuration name")
    ap.add_argument("--input", nargs="+", default=[], help="local data files for --hf_dataset=json or text")
    ap.add_argument("--text_key", default="text", help="the field holding each document's text")
    ap.add_argument("--tokenizer", default="gpt2", help="a tiktoken encoding name or a tokenizer.json file")
    ap.add_argument("--out_dir", default=os.path.dirname(os.path.abspath(__file__)),
                    help="where train.bin, val.bin and meta.json go (default: this folder)")
    ap.add_argument("--val_fraction", type=float, default=0.0005, help="share of documents (the last ones) held out")
    ap.add_argument("--num_proc", type=int, default=len(os.sched_getaffinity(0)), help="processes for load and map")
    args = ap.parse_args(argv)
    if not 0 < args.val_fraction < 1:
        sys.exit(f"error: --val_fraction={args.val_fraction} must be between 0 and 1")

    try:
        spec, tok = tokenizer_from_arg(args.tokenizer, args.out_dir)
        for path in args.input:
            if not os.path.isfile(path) or os.path.getsize(path) == 0:
                raise DataError(f"{path} is missing or empty; check --input")
        dtype = dtype_for_vocab(tok.vocab_size)
        ds = load_hf_dataset(args.hf_dataset, args.hf_config, "train", args.input, num_proc=args.num_proc)
        if args.text_key not in ds.column_names:
            raise DataError(f"{args.hf_dataset} has no column {args.text_key!r} (it has {', '.join(ds.column_names)}); "
                            f"set --text_key")
        tokenized = ds.map(tokenize_batch, batched=True, num_proc=args.num_proc if args.num_proc > 1 else None,
                           remove_columns=ds.column_names, desc="tokenizing",
                           fn_kwargs=dict(spec=spec, base_dir=args.out_dir, text_key=args.text_key, dtype=dtype))
        skipped = Counter()
        with TokenWriter(args.out_dir, tok.vocab_size, spec) as writer:
            for table in tokenized.with_format("arrow").iter(batch_size=10_000):
                ids = table["ids"].combine_chunks()  # list array: one list of ids per document
                lens = np.diff(ids.offsets.to_numpy())  # tokens per row; 0 for a skipped one
                writer.write(ids.flatten().to_numpy(), lens[lens > 0])
                skipped.update(r for r in table["skip"].to_pylist() if r)
            meta = writer.finish(spec, val_fraction=args.val_fraction, source=args.hf_dataset,
                                 skipped={k: skipped[k] for k in SKIP_REASONS})
    except (DataError, ConnectionError) as e:
        sys.exit(f"error: {e}")
    print(f"train has {meta['train_tokens']:,} tokens in {meta['train_documents']:,} documents")
    print(f"val has {meta['val_tokens']:,} tokens in {meta['val_documents']:,} documents")
    print("skipped: " + (", ".join(f"{v:,} {k}" for k, v in meta["skipped"].items() if v) or "none"))


if __name__ == "__main__":
    main()
