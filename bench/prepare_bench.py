"""
How fast data/jsonl/prepare.py tokenizes a large JSONL corpus, and how much memory it takes.

    python bench/prepare_bench.py --input tinyshakespeare/input.txt pg996.txt \
        wikitext-2/wiki.valid.raw wikitext-2/wiki.test.raw birthplace/wiki.txt arxiv.jsonl   # 1 and 4 GiB, ~7 min
    python bench/prepare_bench.py --input tests/data/*.txt tests/data/*.jsonl \
        --sizes_gib 0.1 --procs 1 2 --big_gib 0                                            # a quick look

1. Generates JSONL documents (--sizes_gib, default 1 GiB) under --tmp (not the repository)
   from the corpora given as --input=PATH ...: text files, whose paragraphs lie between
   blank lines (one per line where there are hardly any blank lines), and .jsonl files,
   whose records' "text" is split the same way. Each document is a run of consecutive
   paragraphs of one of them. The figures in docs/results.md used, in this order: tiny Shakespeare,
   Don Quixote (Project Gutenberg's pg996.txt), WikiText-2's raw valid and test splits,
   the CS224N a5 wiki.txt, and a 20-document RedPajama arXiv sample, so the text is real
   prose, verse, markup and LaTeX. tiktoken downloads GPT-2's BPE once; offline, set
   TIKTOKEN_CACHE_DIR to a folder holding it (tests/data/tiktoken_cache does).
2. Runs `data/jsonl/prepare.py --num_proc=N` on it for each N in --procs and reports
   documents/s and tokens/s (end to end: the script's whole wall time, start-up and the
   val split included) and the peak memory of the whole process tree: every 0.2 s it sums
   VmRSS (and PSS, which counts pages shared between the workers once) over the script and
   all its descendants, read from /proc.
3. The ceiling: tiktoken's own batch encoder (Encoding.encode_ordinary_batch, num_threads=1,
   so one core) on the same document texts in one process, timing only the encode calls;
   and, stricter, a plain loop of Encoding.encode_ordinary over them.
4. With --big_gib (default 4), repeats the largest --procs run on a corpus that size, to
   show that peak memory does not grow with the input.
Generated files are deleted at the end. Run it under the CPU lock: the figures are only
honest on an otherwise idle machine.
"""

import argparse
import json
import os
import random
import re
import resource
import shutil
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def paragraphs(paths):
    """Each corpus (a text file, or a .jsonl file's records' text) as a list of paragraphs
    (text between blank lines)."""
    out = []
    for path in paths:
        if path.endswith(".jsonl"):
            with open(path, encoding="utf-8") as f:
                out.append([p for line in f for p in re.split(r"\n[ \t]*\n", json.loads(line)["text"]) if p.strip()])
            continue
        with open(path, encoding="utf-8-sig") as f:
            text = f.read().replace("\r\n", "\n")
        paras = re.split(r"\n[ \t]*\n", text)  # WikiText's blank lines hold a space
        if len(paras) < 100:  # the CS224N Wikipedia text has one short article per line, no blank lines
            paras = text.split("\n")
        out.append([p for p in paras if p.strip()])
    return out


def generate(path, n_bytes, corpora, seed=0):
    """Write JSONL documents drawn from corpora (lists of paragraphs) to path until it holds
    n_bytes. Returns the document count."""
    rng = random.Random(seed)
    # a pool of distinct documents, written in random order: generating every line afresh
    # would take longer than the benchmark itself
    pool = []
    for _ in range(20000):
        paras = rng.choice(corpora)
        start = rng.randrange(len(paras))
        doc = "\n\n".join(paras[start:start + rng.randint(1, 30)])
        pool.append((json.dumps({"text": doc, "meta": {"id": len(pool)}}) + "\n").encode())
    n_docs, size = 0, 0
    with open(path, "wb") as f:
        while size < n_bytes:
            lines = rng.choices(pool, k=1000)
            f.write(b"".join(lines))
            size += sum(map(len, lines))
            n_docs += len(lines)
    return n_docs


def tree_memory(root_pid):
    """(sum of VmRSS, sum of PSS) in bytes over root_pid and all its descendants."""
    parent = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    stat = f.read()
                parent[int(entry)] = int(stat[stat.rindex(")") + 2:].split()[1])
            except (OSError, ValueError):
                continue  # the process ended while we looked
    tree, grew = {root_pid}, True
    while grew:
        kids = {p for p, pp in parent.items() if pp in tree} - tree
        tree |= kids
        grew = bool(kids)
    rss = pss = 0
    for pid in tree:
        try:
            with open(f"/proc/{pid}/status") as f:
                rss += next((int(line.split()[1]) for line in f if line.startswith("VmRSS:")), 0) * 1024
            with open(f"/proc/{pid}/smaps_rollup") as f:
                pss += next((int(line.split()[1]) for line in f if line.startswith("Pss:")), 0) * 1024
        except OSError:
            continue
    return rss, pss


def busy_cpu_seconds():
    """CPU seconds the whole machine has spent busy since boot (all processes, all cores)."""
    with open("/proc/stat") as f:
        user, nice, system, idle, iowait, irq, softirq, steal = map(int, f.readline().split()[1:9])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def own_cpu_seconds():
    """CPU seconds of this process and of all its finished descendants."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def run_prepare(path, num_proc, out_dir):
    """Run the prepare script; returns its wall time, peak tree RSS and PSS, meta.json, and
    how many cores other processes on the machine kept busy meanwhile (0 on a quiet machine)."""
    busy0, own0 = busy_cpu_seconds(), own_cpu_seconds()
    cmd = [sys.executable, os.path.join(ROOT, "data", "jsonl", "prepare.py"), f"--input={path}",
           f"--out_dir={out_dir}", f"--num_proc={num_proc}"]
    t0 = time.time()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    peak_rss = peak_pss = 0
    while proc.poll() is None:
        rss, pss = tree_memory(proc.pid)
        peak_rss, peak_pss = max(peak_rss, rss), max(peak_pss, pss)
        time.sleep(0.2)
    wall = time.time() - t0
    others = (busy_cpu_seconds() - busy0 - (own_cpu_seconds() - own0)) / wall
    output = proc.stdout.read()
    if proc.returncode != 0:
        sys.exit(f"error: {' '.join(cmd)} failed:\n{output}")
    with open(os.path.join(out_dir, "meta.json")) as f:
        meta = json.load(f)
    return dict(wall_s=wall, peak_rss=peak_rss, peak_pss=peak_pss, meta=meta, output=output.strip(), others=others)


def ceilings(path):
    """tiktoken on one core over the document texts of path, timing only the encode calls:
    {name: (seconds, docs, tokens)} for its batch encoder (encode_ordinary_batch with
    num_threads=1) and for a plain loop of encode_ordinary calls."""
    import tiktoken
    enc = tiktoken.get_encoding("gpt2")
    encoders = {"encode_ordinary_batch(num_threads=1)": lambda texts: enc.encode_ordinary_batch(texts, num_threads=1),
                "[encode_ordinary(t) for t in texts]": lambda texts: [enc.encode_ordinary(t) for t in texts]}
    out = {name: [0.0, 0, 0] for name in encoders}
    with open(path, "rb") as f:
        while True:
            lines = f.readlines(1 << 22)  # about 4 MB of documents at a time, as the script reads
            if not lines:
                break
            texts = [json.loads(line)["text"] for line in lines]
            for name, encode in encoders.items():
                t0 = time.perf_counter()
                ids = encode(texts)
                out[name][0] += time.perf_counter() - t0
                out[name][1] += len(texts)
                out[name][2] += sum(map(len, ids))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--input", nargs="+", required=True, metavar="PATH",
                    help="text files and .jsonl files whose paragraphs make up the documents")
    ap.add_argument("--sizes_gib", type=float, nargs="+", default=[1.0], help="corpus sizes to time at")
    ap.add_argument("--procs", type=int, nargs="+", default=[1, 2], help="--num_proc values to time")
    ap.add_argument("--big_gib", type=float, default=4.0, help="also run the largest --procs at this size (0: no)")
    ap.add_argument("--tmp", default="/tmp/gptlab_prepare_bench", help="where the generated corpora go")
    ap.add_argument("--json", help="also write the results to this file")
    args = ap.parse_args()

    missing = [p for p in args.input if not os.path.isfile(p)]
    if missing:
        sys.exit(f"error: --input: {', '.join(missing)} does not exist")
    corpora = paragraphs(args.input)
    os.makedirs(args.tmp, exist_ok=True)
    results = []
    print(f"{os.cpu_count()} CPUs. 'others': cores that other processes kept busy during the run (0.00 on a quiet machine)")
    print(f"{'input':>9} {'procs':>5} {'docs':>10} {'tokens':>13} {'wall s':>7} {'docs/s':>8} "
          f"{'tokens/s':>11} {'peak RSS':>9} {'peak PSS':>9} {'others':>6}")
    try:
        runs = [(size, p) for size in args.sizes_gib for p in args.procs]
        if args.big_gib:
            runs.append((args.big_gib, max(args.procs)))
        generated = {}
        for size, procs in runs:
            if size not in generated:
                path = os.path.join(args.tmp, f"bench_{size:g}gib.jsonl")
                t0 = time.time()
                generate(path, int(size * 2**30), corpora, seed=int(size * 1000))
                print(f"(generated {path}: {os.path.getsize(path) / 2**30:.2f} GiB in {time.time() - t0:.0f}s)")
                for old in generated.values():  # keep one big file on disk at a time
                    os.remove(old)
                generated = {size: path}
            out_dir = os.path.join(args.tmp, "out")
            r = run_prepare(generated[size], procs, out_dir)
            shutil.rmtree(out_dir)
            m = r["meta"]
            docs, tokens = m["train_documents"] + m["val_documents"], m["train_tokens"] + m["val_tokens"]
            row = dict(kind="prepare", gib=size, procs=procs, docs=docs, tokens=tokens, wall_s=r["wall_s"],
                       docs_per_s=docs / r["wall_s"], tokens_per_s=tokens / r["wall_s"],
                       peak_rss_mb=r["peak_rss"] / 2**20, peak_pss_mb=r["peak_pss"] / 2**20, other_cores=r["others"],
                       script_says=r["output"].splitlines()[1] if len(r["output"].splitlines()) > 1 else "")
            results.append(row)
            print(f"{size:>6g}GiB {procs:>5} {docs:>10,} {tokens:>13,} {r['wall_s']:>7.1f} {row['docs_per_s']:>8,.0f} "
                  f"{row['tokens_per_s']:>11,.0f} {row['peak_rss_mb']:>7,.0f}MB {row['peak_pss_mb']:>7,.0f}MB "
                  f"{r['others']:>6.2f}", flush=True)
            if size == args.sizes_gib[-1] and procs == args.procs[-1]:
                for name, (sec, docs, tokens) in ceilings(generated[size]).items():
                    row = dict(kind="ceiling", encoder=name, gib=size, procs=1, docs=docs, tokens=tokens, wall_s=sec,
                               docs_per_s=docs / sec, tokens_per_s=tokens / sec)
                    results.append(row)
                    print(f"{size:>6g}GiB {'tiktoken ' + name:>57} {sec:>7.1f} "
                          f"{row['docs_per_s']:>8,.0f} {row['tokens_per_s']:>11,.0f}", flush=True)
    finally:
        shutil.rmtree(args.tmp, ignore_errors=True)

    by_procs = {r["procs"]: r for r in results if r["kind"] == "prepare" and r["gib"] == args.sizes_gib[-1]}
    for p, r in sorted(by_procs.items()):
        vs = [f"{r['tokens_per_s'] / (p * c['tokens_per_s']):.0%} of {p} x {c['encoder']}"
              for c in results if c["kind"] == "ceiling"]
        print(f"{p} process(es): {r['tokens_per_s'] / by_procs[min(by_procs)]['tokens_per_s']:.2f}x the "
              f"{min(by_procs)}-process tokens/s; " + "; ".join(vs))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
