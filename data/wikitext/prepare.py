"""
WikiText-103 (Merity et al. 2016; raw, 103M words of good Wikipedia articles) with a
byte-level BPE tokenizer trained on its training split.

    python data/wikitext/prepare.py                                  # from the Hugging Face hub
    python data/wikitext/prepare.py --input=wikitext-103-raw/        # local wiki.{train,valid,test}.raw
    python data/wikitext/prepare.py --hf_config=wikitext-2-raw-v1 --vocab_size=4096
    python data/wikitext/prepare.py --input=PATH --train_split=valid --val_split=test   # a folder without wiki.train.raw

The tokenizer (Hugging Face `tokenizers`, byte-level BPE: every byte is a token, so any text
round-trips exactly) is trained on --train_split only, with --vocab_size ids including the
end-of-text token, and saved as tokenizer.json beside the bins; meta.json points at it, so
train.py, sample.py and evaluation decode with it. Each article (it starts at a top-level
" = Title = " heading) is one document, followed by end-of-text. --val_split becomes val.bin.
--input=PATH is a folder holding the wiki.<split>.raw files of the splits it uses; the last
example trains on the valid split and validates on test, for a copy without the train file.

Then `python train.py config/train_wikitext_small.py` (or _base.py): its "val ppl" is the
perplexity per BPE token of the validation split, not per word, so it is not comparable
with published word-level WikiText numbers.
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
from data.common import DataError, dtype_for_vocab  # noqa: E402
from data.fetch import check_input_file, load_hf_dataset  # noqa: E402
from data.tokenizer import Tokenizer  # noqa: E402
from data.writer import TokenWriter  # noqa: E402

HF_SPLITS = {"train": "train", "valid": "validation", "test": "test"}  # file name -> hub split name
EOT = "<|endoftext|>"
BATCH_CHARS = 1 << 22  # encode about 4M characters of articles at a time


def file_lines(path):
    """Lines of a UTF-8 text file, read lazily, with one-line errors."""
    check_input_file(path)
    with open(path, "rb") as f:  # bytes, so that a bad byte can be reported with its line
        for n, line in enumerate(f, 1):
            try:
                yield line.decode("utf-8")
            except UnicodeDecodeError as e:
                raise DataError(f"{path} is not UTF-8 text (line {n:,}: {e.reason}); "
                                f"convert it first, e.g. iconv -t utf-8") from None


def split_lines(args, split):
    """The lines of one split (each ending in its newline), from --input or the hub."""
    if args.input:
        if not os.path.isdir(args.input):
            raise DataError(f"--input={args.input} is not a folder; give the folder holding wiki.{split}.raw")
        return file_lines(os.path.join(args.input, f"wiki.{split}.raw"))
    ds = load_hf_dataset(args.hf_dataset, args.hf_config, HF_SPLITS[split])
    return (row["text"] for row in ds)


def articles(lines):
    """Group lines into articles: a new one starts at each top-level heading " = Title = "
    (" = = Section = = " headings, and legend lines such as " = National record ", stay
    inside); lines before the first heading join the first article. Joined, the articles
    are exactly the input."""
    article, titled = [], False
    for line in lines:
        heading = line.startswith(" = ") and not line.startswith(" = = ") and line.rstrip().endswith(" =")
        if heading and titled:
            yield "".join(article)
            article = []
        titled = titled or heading
        article.append(line)
    if article:
        yield "".join(article)


def train_tokenizer(texts, vocab_size, path):
    """Train a byte-level BPE on texts with vocab_size ids (<|endoftext|> is id 0) and save it
    as a tokenizer.json at path."""
    from tokenizers import Tokenizer as HFTokenizer
    from tokenizers import decoders, models, pre_tokenizers, trainers
    tok = HFTokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)  # no space added: text round-trips
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[EOT], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())  # all 256 bytes, seen or not
    tok.train_from_iterator(texts, trainer)
    if tok.get_vocab_size() != vocab_size:
        raise DataError(f"the training split is too small for --vocab_size={vocab_size} "
                        f"(BPE ran out of merges at {tok.get_vocab_size()}); lower --vocab_size")
    tok.save(path + ".tmp")
    os.replace(path + ".tmp", path)


def batches(texts):
    """Lists of texts of about BATCH_CHARS characters in all."""
    batch, size = [], 0
    for text in texts:
        batch.append(text)
        size += len(text)
        if size >= BATCH_CHARS:
            yield batch
            batch, size = [], 0
    if batch:
        yield batch


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--input", help="a folder with wiki.train.raw, wiki.valid.raw, wiki.test.raw")
    ap.add_argument("--train_split", default="train", choices=list(HF_SPLITS), help="trains the tokenizer and the model")
    ap.add_argument("--val_split", default="valid", choices=list(HF_SPLITS), help="becomes val.bin")
    ap.add_argument("--hf_dataset", default="Salesforce/wikitext", help="the hub dataset, without --input")
    ap.add_argument("--hf_config", default="wikitext-103-raw-v1", help="its configuration (wikitext-2-raw-v1: WikiText-2)")
    ap.add_argument("--vocab_size", type=int, default=8192, help="BPE ids, end-of-text included")
    ap.add_argument("--out_dir", default=os.path.dirname(os.path.abspath(__file__)),
                    help="where train.bin, val.bin and meta.json go (default: this folder)")
    args = ap.parse_args(argv)
    if args.vocab_size < 257:
        sys.exit(f"error: --vocab_size={args.vocab_size} is too small: byte-level BPE needs 256 bytes + end-of-text")
    if args.train_split == args.val_split:
        sys.exit(f"error: --train_split and --val_split are both {args.train_split}; pick two different splits")

    spec = {"kind": "hf", "file": "tokenizer.json"}
    try:
        os.makedirs(args.out_dir, exist_ok=True)
        train_tokenizer(articles(split_lines(args, args.train_split)), args.vocab_size,
                        os.path.join(args.out_dir, spec["file"]))
        tok = Tokenizer(spec, args.out_dir)
        print(f"trained a byte-level BPE with {args.vocab_size:,} tokens on the {args.train_split} split")
        with TokenWriter(args.out_dir, args.vocab_size, spec) as writer:
            for split, name in (("train", args.train_split), ("val", args.val_split)):
                for batch in batches(articles(split_lines(args, name))):
                    writer.write(*tok.encode_documents(batch, dtype_for_vocab(args.vocab_size)), split=split)
            meta = writer.finish(spec, source=args.input or f"{args.hf_dataset}/{args.hf_config}",
                                 splits={"train": args.train_split, "val": args.val_split})
    except (DataError, ConnectionError) as e:
        sys.exit(f"error: {e}")
    print(f"train ({args.train_split}) has {meta['train_tokens']:,} tokens in {meta['train_documents']:,} articles")
    print(f"val ({args.val_split}) has {meta['val_tokens']:,} tokens in {meta['val_documents']:,} articles")


if __name__ == "__main__":
    main()
