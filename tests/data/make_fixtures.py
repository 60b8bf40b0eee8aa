"""
Cut the test fixtures in tests/data/ from full copies of the public corpora.

    python tests/data/make_fixtures.py --shakespeare=PATH/input.txt --don_quixote=PATH/pg996.txt \
        --wikitext2=PATH/wikitext-2 --gpt2_bpe=PATH/gpt2_bpe

The tests never need the full corpora: this script is how the slices were made, so that
anyone can remake them and compare with the sha256 sums in tests/data/README.md.
    tinyshakespeare.txt            the first 120,000 characters or so of tiny Shakespeare,
                                   up to a blank line
    don_quixote_pg996_slice.txt    Project Gutenberg's pg996.txt (UTF-8 BOM, CRLF) with its
                                   licence header and footer and the "*** START OF" / "*** END
                                   OF" lines, keeping the front matter, the first chapters and
                                   the last pages of the novel between them
    wikitext-2/wiki.valid.raw      the first 8 articles of WikiText-2's raw valid split
    wikitext-2/wiki.test.raw       the first 5 articles of its raw test split
    tiktoken_cache/<sha1 of URL>   GPT-2's vocab.bpe and encoder.json, named as tiktoken names
                                   its cache entries, so TIKTOKEN_CACHE_DIR=tests/data/tiktoken_cache
                                   gives tiktoken.get_encoding("gpt2") offline
    redpajama_format.jsonl         20 documents in the RedPajama record format, {"text": ...,
                                   "meta": {...}}, made from tiny Shakespeare: verse, prose with
                                   typographic punctuation, a LaTeX paper, CRLF text
--wikitext2 is a folder with wiki.valid.raw and wiki.test.raw; --gpt2_bpe one with vocab.bpe
and encoder.json. The birthplace files come from make_birthplace.py, not from here.
"""

import argparse
import hashlib
import json
import os
import random
import re
import shutil

HERE = os.path.dirname(os.path.abspath(__file__))
# tiktoken's gpt2 encoding: the URL it downloads each file from, and the sha256 it checks
GPT2_FILES = {
    "vocab.bpe": ("https://openaipublic.blob.core.windows.net/gpt-2/encodings/main/vocab.bpe",
                  "1ce1664773c50f3e0cc8842619a93edc4624525b728b188a9e0be33b7726adc5"),
    "encoder.json": ("https://openaipublic.blob.core.windows.net/gpt-2/encodings/main/encoder.json",
                     "196139668be63f3b5d6574427317ae82f612a97c5d1cdaf36ed2256dbf636783"),
}


def read(path, encoding="utf-8"):
    with open(path, encoding=encoding, newline="") as f:  # newline="": line endings as they are
        return f.read()


def write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="") as f:
        f.write(text)
    print(f"{os.path.relpath(path, HERE)}: {os.path.getsize(path):,} bytes")


def shakespeare_slice(text, n=120_000):
    return text[:text.index("\n\n", n) + 2]


def don_quixote_slice(text):
    """Gutenberg's header, the front matter and the first chapters, then the last pages of the
    novel, then the END line and the licence footer; cut at blank lines, CRLF kept."""
    start = text.index("\r\n", text.index("*** START OF")) + 2  # the line after START
    end = text.rindex("\r\n", 0, text.index("*** END OF")) + 2  # where the END line begins
    front = text.index("\r\n\r\n", start + 4_000)  # the cover, the editor's note, some contents
    chapter1 = text.rindex("\r\n\r\n", 0, text.index("In a village of La Mancha"))
    chapter1 = text.rindex("CHAPTER I.", 0, chapter1)  # from the chapter's heading
    first = text.index("\r\n\r\n", chapter1 + 45_000)
    last = text.index("\r\n\r\n", end - 30_000)
    return text[:front] + "\r\n\r\n\r\n\r\n" + text[chapter1:first] + text[last:]


def first_articles(text, n):
    """The text up to the (n+1)-th top-level " = Title = " heading."""
    starts = [m.start() for m in re.finditer(r"^ = [^=].* = $", text, flags=re.M)]
    return text[:starts[n]]


def latex_paper(title, lines, rng):
    body = " \\\\\n".join(line.replace("&", "\\&") for line in lines)
    k = rng.randint(2, 9)
    return (f"\\documentclass{{article}}\n\\usepackage{{amsmath}}\n\\title{{{title}}}\n\\begin{{document}}\n"
            f"\\maketitle\n% a scene set as verse\n\\section{{The scene}}\n\\begin{{verse}}\n{body}\n\\end{{verse}}\n"
            f"\\section{{Counting}}\nThe scene has ${len(lines)}$ lines; with $n = {k}$ speakers,\n"
            f"\\begin{{equation}}\n  \\sum_{{i=1}}^{{n}} \\frac{{1}}{{i^2}} < \\frac{{\\pi^2}}{{6}} \\approx 1.645\n"
            f"\\end{{equation}}\n\\end{{document}}\n")


def typographic(text):
    """Curly quotes, em dashes and a few accented words: the characters real prose has."""
    text = re.sub(r"(\w)'(\w)", "\\1\u2019\\2", text).replace("--", "\u2014")
    return text.replace("naive", "na\u00efve").replace("cafe", "caf\u00e9")


def redpajama_documents(text, n=20, seed=0):
    """n records {"text", "meta"} from runs of consecutive paragraphs of text."""
    rng = random.Random(seed)
    paras = [p for p in text.split("\n\n") if p.strip()]
    docs = []
    for i in range(n):
        start = rng.randrange(len(paras) - 40)
        run = paras[start:start + rng.randint(8, 40)]
        style = ["verse", "prose", "latex", "crlf"][i % 4]
        if style == "verse":
            doc = "\n\n".join(run)
        elif style == "prose":  # speeches run together as paragraphs of prose
            doc = "\n\n".join(typographic(" ".join(p.split("\n")[1:]) or p) for p in run)
        elif style == "latex":
            doc = latex_paper(run[0].split("\n")[0].rstrip(":").title(), "\n".join(run[1:]).split("\n"), rng)
        else:
            doc = "\r\n\r\n".join(p.replace("\n", "\r\n") for p in run)
        docs.append({"text": doc, "meta": {"source": "tiny Shakespeare", "paragraph": start,
                                           "paragraphs": len(run), "style": style, "language": "en"}})
    return docs


def sha256_of(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--shakespeare", required=True, help="tiny Shakespeare's input.txt")
    ap.add_argument("--don_quixote", required=True, help="Project Gutenberg's pg996.txt")
    ap.add_argument("--wikitext2", required=True, help="folder with WikiText-2's wiki.valid.raw and wiki.test.raw")
    ap.add_argument("--gpt2_bpe", required=True, help="folder with GPT-2's vocab.bpe and encoder.json")
    ap.add_argument("--out_dir", default=HERE)
    args = ap.parse_args()

    shakespeare = read(args.shakespeare)
    write(os.path.join(args.out_dir, "tinyshakespeare.txt"), shakespeare_slice(shakespeare))
    write(os.path.join(args.out_dir, "don_quixote_pg996_slice.txt"),
          "\ufeff" + don_quixote_slice(read(args.don_quixote, "utf-8-sig")))
    for split, n in (("valid", 8), ("test", 5)):
        write(os.path.join(args.out_dir, "wikitext-2", f"wiki.{split}.raw"),
              first_articles(read(os.path.join(args.wikitext2, f"wiki.{split}.raw")), n))
    docs = redpajama_documents(shakespeare)
    write(os.path.join(args.out_dir, "redpajama_format.jsonl"), "".join(json.dumps(d) + "\n" for d in docs))
    cache = os.path.join(args.out_dir, "tiktoken_cache")
    os.makedirs(cache, exist_ok=True)
    for name, (url, sha256) in GPT2_FILES.items():
        src = os.path.join(args.gpt2_bpe, name)
        if sha256_of(src) != sha256:
            raise SystemExit(f"error: {src} is not GPT-2's {name} (its sha256 is not {sha256})")
        dest = os.path.join(cache, hashlib.sha1(url.encode()).hexdigest())
        shutil.copyfile(src, dest)
        print(f"{os.path.relpath(dest, HERE)}: {name}, {os.path.getsize(dest):,} bytes")


if __name__ == "__main__":
    main()
