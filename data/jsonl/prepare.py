"""
Any JSON-lines corpus (the Pile, RedPajama, your own crawl) tokenized into train.bin / val.bin.

    python data/jsonl/prepare.py --input='pile/train/*.jsonl.zst' --out_dir=data/pile
    python data/jsonl/prepare.py --input a.jsonl b.jsonl.gz --tokenizer=r50k_base --val_docs=1000
    python data/jsonl/prepare.py --input=docs.jsonl --tokenizer=data/wikitext/tokenizer.json
    python data/jsonl/prepare.py --hf_dataset=togethercomputer/RedPajama-Data-1T-Sample --streaming
    python data/jsonl/prepare.py --hf_dataset=json --input=docs.jsonl     # datasets' json builder, offline

Each line is one JSON object; its --text_key field (default "text") is a document. Files are
read in the order given (globs sorted), in blocks of whole lines, tokenized by --num_proc
worker processes (default: every core) and written in input order, each document followed
by the end-of-text token; memory stays flat however large the input. The last documents
(--val_fraction of them, or --val_docs) become val.bin, so shuffle a sorted corpus first.

Lines that are not valid UTF-8 or JSON, lack the text key, hold a non-string text, or are
empty (a blank line, or "") are skipped and counted by reason, on the console and in
meta.json. Ids are uint16 when the vocabulary fits, else uint32 (meta.json says which).
On a sample of 20 RedPajama arXiv documents (--input=PATH to its .jsonl), with gpt2:
    20 documents: 19 train (365,785 tokens), 1 val (34,333 tokens)
    skipped: none
"""

import argparse
import glob
import gzip
import io
import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
from data.common import DataError, dtype_for_vocab  # noqa: E402
from data.fetch import check_input_file, load_hf_dataset  # noqa: E402
from data.tokenizer import tokenizer_from_arg  # noqa: E402
from data.writer import SKIP_REASONS, TokenWriter, document_text, ordered_pool_map  # noqa: E402

HF_BATCH = 1000  # records per task from a Hugging Face dataset


# ------------------------------------------------------------------ reading the input

def input_files(patterns):
    """Expand --input into a list of files, in the order given (each glob sorted)."""
    files = []
    for pattern in patterns:
        if glob.has_magic(pattern):
            matches = sorted(glob.glob(pattern))
            if not matches:
                raise DataError(f"no file matches --input={pattern}")
            files += matches
        elif os.path.isdir(pattern):
            files += sorted(p for p in glob.glob(os.path.join(pattern, "*")) if p.endswith((".jsonl", ".jsonl.gz", ".jsonl.zst")))
        else:
            files.append(pattern)
    for path in files:
        check_input_file(path)
    return files


def open_binary(path):
    """The file's bytes, decompressed on the fly for .gz and .zst."""
    if path.endswith(".gz"):
        return gzip.open(path, "rb")
    if path.endswith(".zst"):
        import zstandard
        return io.BufferedReader(zstandard.ZstdDecompressor().stream_reader(open(path, "rb"), read_across_frames=True, closefd=True))
    return open(path, "rb")


UTF8_BOM = b"\xef\xbb\xbf"  # Windows tools (Notepad, PowerShell's Out-File -Encoding utf8) start files with it
WIDE_BOMS = [(b"\xff\xfe\x00\x00", "UTF-32 (little-endian)"), (b"\x00\x00\xfe\xff", "UTF-32 (big-endian)"),
             (b"\xff\xfe", "UTF-16 (little-endian)"), (b"\xfe\xff", "UTF-16 (big-endian)")]


def check_encoding(path, head):
    """Raise DataError when a file's first bytes say it is UTF-16 or UTF-32, not UTF-8: a byte-order
    mark (PowerShell's default), or NUL bytes among the first characters (JSON text has none)."""
    name = next((n for bom, n in WIDE_BOMS if head.startswith(bom)), None)
    if name is None and b"\x00" in head[:4]:
        name = "UTF-16 (little-endian)" if head[1:2] == b"\x00" else "UTF-16 or UTF-32 (big-endian)"
    if name:
        raise DataError(f"{path} is {name} text, not UTF-8; convert it first, "
                        f"e.g. iconv -f {'UTF-32' if '32' in name else 'UTF-16'} -t UTF-8 {path} > {path}.utf8.jsonl")


def array_records(path, data):
    """The documents of a file that is one JSON array of objects, in HF_BATCH lists, or None when
    the file does not parse as one (then it is read as lines after all)."""
    try:
        records = json.loads(data.decode("utf-8-sig"))
    except ValueError:  # UnicodeDecodeError and JSONDecodeError both
        return None
    if not isinstance(records, list):
        return None
    print(f"{path}: one JSON array of {len(records):,} values, read as documents")
    return [records[i:i + HF_BATCH] for i in range(0, len(records), HF_BATCH)]


def line_blocks(paths, block_bytes):
    """Blocks of whole lines (bytes, about block_bytes each), file after file. A file that is one
    JSON array instead of lines (what json.dump writes) comes as lists of its records, read whole."""
    for path in paths:
        try:
            with open_binary(path) as f:
                carry, first = b"", True
                while block := f.read(block_bytes):
                    if first:
                        check_encoding(path, block)
                        first = False
                        if block.removeprefix(UTF8_BOM).lstrip()[:1] == b"[":
                            block += f.read()
                            records = array_records(path, block)
                            if records is not None:
                                yield from records
                                break
                    block = carry + block
                    cut = block.rfind(b"\n") + 1
                    carry = block[cut:]
                    if cut:
                        yield block[:cut]
                if carry:  # the last line had no newline
                    yield carry
        except (OSError, EOFError, ValueError) as e:  # gzip.BadGzipFile, zstd errors, truncated files
            if isinstance(e, DataError):
                raise
            raise DataError(f"cannot read {path}: {e}; is it really {'compressed' if path.endswith(('.gz', '.zst')) else 'plain'} JSONL?") from None


def hf_record_batches(ds, text_key):
    """Lists of HF_BATCH records from a Hugging Face dataset (streaming or not), in order,
    each cut down to its text field so that only the text travels to the workers."""
    batch = []
    for record in ds:
        batch.append({text_key: record[text_key]} if text_key in record else {})
        if len(batch) == HF_BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


# ------------------------------------------------------------------ the worker processes

_worker = {}  # each worker's tokenizer and settings, set by init_worker


def init_worker(spec, out_dir, text_key, dtype):
    from data.tokenizer import Tokenizer
    os.environ["TOKENIZERS_PARALLELISM"] = "false"  # Hugging Face tokenizers: one thread per process
    _worker.update(tok=Tokenizer(spec, out_dir), text_key=text_key, dtype=dtype)


def parse_lines(block, skipped):
    """The JSON values of a block of lines; lines that cannot be read are counted in skipped."""
    lines = block.split(b"\n")
    if not lines[-1]:
        lines.pop()  # the block ends with a newline; there is no line after it
    for line in lines:
        line = line.removeprefix(UTF8_BOM)  # the first line of a file, or of each file cat put together
        if not line.strip():  # CRLF files: a lone "\r" is a blank line, and json.loads ignores a trailing one
            skipped["empty"] += 1
            continue
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError:
            skipped["invalid_utf8"] += 1
            continue
        try:
            yield json.loads(text)
        except ValueError:  # json.JSONDecodeError
            skipped["invalid_json"] += 1


def encode_chunk(chunk):
    """bytes of whole JSONL lines, or a list of records from datasets ->
    (ids (N,), tokens per document (D,), skipped count per reason)."""
    skipped = dict.fromkeys(SKIP_REASONS, 0)
    records = parse_lines(chunk, skipped) if isinstance(chunk, bytes) else chunk
    texts = []
    for record in records:
        text, reason = document_text(record, _worker["text_key"])
        if reason:
            skipped[reason] += 1
        else:
            texts.append(text)
    ids, doc_lens = _worker["tok"].encode_documents(texts, _worker["dtype"])
    return ids, doc_lens, skipped


# ------------------------------------------------------------------ main

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--input", nargs="+", default=[], help=".jsonl, .jsonl.gz or .jsonl.zst files, globs or folders")
    ap.add_argument("--text_key", default="text", help="the field holding each document's text")
    ap.add_argument("--tokenizer", default="gpt2", help="a tiktoken encoding name or a tokenizer.json file")
    ap.add_argument("--out_dir", default=os.path.dirname(os.path.abspath(__file__)),
                    help="where train.bin, val.bin and meta.json go (default: this folder)")
    ap.add_argument("--val_fraction", type=float, default=0.0005, help="share of documents (the last ones) held out")
    ap.add_argument("--val_docs", type=int, default=0, help="hold out exactly this many last documents instead")
    ap.add_argument("--num_proc", type=int, default=len(os.sched_getaffinity(0)), help="tokenizer processes")
    ap.add_argument("--block_kb", type=int, default=4096, help="KB of lines per task: enough to amortise the pipe")
    ap.add_argument("--hf_dataset", help="read a Hugging Face dataset instead (with --input: its data_files)")
    ap.add_argument("--hf_config", help="the dataset's configuration name")
    ap.add_argument("--hf_split", default="train", help="the Hugging Face dataset's split to read")
    ap.add_argument("--streaming", action="store_true", help="stream the Hugging Face dataset instead of downloading it")
    args = ap.parse_args(argv)
    if not args.input and not args.hf_dataset:
        sys.exit("error: give --input=FILES (.jsonl, .jsonl.gz, .jsonl.zst) or --hf_dataset=NAME")
    if not 0 <= args.val_fraction < 1 or args.val_docs < 0 or not (args.val_docs or args.val_fraction):
        sys.exit("error: hold out some validation documents: --val_fraction in (0, 1) or --val_docs >= 1")
    if args.num_proc < 1 or args.block_kb < 1:
        sys.exit("error: --num_proc and --block_kb must be at least 1")

    try:
        spec, tok = tokenizer_from_arg(args.tokenizer, args.out_dir)
        vocab_size = tok.vocab_size
        dtype = dtype_for_vocab(vocab_size)
        if args.hf_dataset:
            source = {"hf_dataset": args.hf_dataset, "hf_config": args.hf_config, "hf_split": args.hf_split,
                      "data_files": args.input}
            chunks = hf_record_batches(load_hf_dataset(args.hf_dataset, args.hf_config, args.hf_split, args.input,
                                                       args.streaming, args.num_proc), args.text_key)
        else:
            source = input_files(args.input)
            chunks = line_blocks(source, args.block_kb * 1024)
        print(f"tokenizer {args.tokenizer}: vocab {vocab_size:,}, ids stored as {dtype}; {args.num_proc} process(es)")
        meta = tokenize_all(chunks, spec, args, vocab_size, dtype, source)
    except (DataError, ConnectionError) as e:
        sys.exit(f"error: {e}")
    print(f"{meta['train_documents'] + meta['val_documents']:,} documents: "
          f"{meta['train_documents']:,} train ({meta['train_tokens']:,} tokens), "
          f"{meta['val_documents']:,} val ({meta['val_tokens']:,} tokens)")
    skipped = {k: v for k, v in meta["skipped"].items() if v}
    print("skipped: " + (", ".join(f"{v:,} {k}" for k, v in skipped.items()) if skipped else "none"))
    print(f"wrote {args.out_dir}/train.bin, val.bin, meta.json")


def tokenize_all(chunks, spec, args, vocab_size, dtype, source):
    """Tokenize every chunk in worker processes and stream the ids to the bins, in order."""
    from tqdm import tqdm
    skipped = dict.fromkeys(SKIP_REASONS, 0)
    bar = tqdm(unit=" docs", unit_scale=True, mininterval=1.0, disable=None)  # disable=None: off when not a terminal
    t0, n_tokens = time.time(), 0
    with TokenWriter(args.out_dir, vocab_size, spec) as writer:
        results = ordered_pool_map(encode_chunk, chunks, args.num_proc, init_worker,
                                   (spec, args.out_dir, args.text_key, dtype))
        for ids, doc_lens, skips in results:
            writer.write(ids, doc_lens)
            for k, v in skips.items():
                skipped[k] += v
            n_tokens += len(ids)
            bar.update(len(doc_lens))
            bar.set_postfix_str(f"{n_tokens / max(time.time() - t0, 1e-9):,.0f} tokens/s", refresh=False)
        bar.close()
        if writer.docs["train"] == 0:
            raise DataError(f"no usable documents in the input (skipped: "
                            f"{', '.join(f'{v:,} {k}' for k, v in skipped.items() if v) or 'nothing'}); "
                            f"check --input and --text_key")
        dt = time.time() - t0
        print(f"tokenized {writer.docs['train']:,} documents, {n_tokens:,} tokens in {dt:.1f}s "
              f"({writer.docs['train'] / dt:,.0f} docs/s, {n_tokens / dt:,.0f} tokens/s)")
        return writer.finish(spec, val_docs=args.val_docs, val_fraction=0 if args.val_docs else args.val_fraction,
                             skipped=skipped, source=source)


if __name__ == "__main__":
    main()
