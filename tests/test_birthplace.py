"""The knowledge probe (CS224N a5): span corruption, the finetuning mask, evaluation, and the
pretrain -> finetune -> evaluate pipeline, on files in the course's formats that
tests/data/make_birthplace.py synthesises (invented people, real places)."""

import json
import math
import os

import numpy as np
import pytest
import torch

from conftest import fixture, in_process, run
from data.birthplace.batches import MASK, PAD, QA, SpanCorruption, corrupt, qa_example, span_corruption_example
from data.common import load_meta
from data.tokenizer import Tokenizer
from evals.probe import accuracy, parse_answer, read_questions
from model import GPT, GPTConfig
from checkpoint import load_checkpoint
from data.loader import open_batches

TINY = ["--device=cpu", "--dtype=float32", "--n_layer=2", "--n_head=2", "--n_embd=32", "--block_size=128", "--batch_size=16",
        "--gradient_accumulation_steps=1", "--eval_iters=2", "--log_interval=5", "--compile=False", "--warmup_iters=2"]


def course_file(name):
    with open(fixture("birthplace", name), encoding="utf-8") as f:
        return f.read()


def london(lines):
    """How many of the "question<TAB>answer" lines have London for their answer."""
    return sum(line.rstrip("\n").split("\t")[1] == "London" for line in lines)


def test_prepare_counts_the_vocabulary_documents_and_questions(bp_data):
    folder, printed = bp_data
    texts = {name: course_file(name) for name in ("wiki.txt", "birth_places_train.tsv", "birth_dev.tsv",
                                                  "birth_test_inputs.tsv")}
    n_chars = len(set("".join(texts.values())))
    wiki_docs = [line for line in texts["wiki.txt"].split("\n") if line]
    n_train, n_dev = (len(texts[n].splitlines()) for n in ("birth_places_train.tsv", "birth_dev.tsv"))
    assert f"vocab size: {n_chars + 2} ({n_chars} characters + PAD + MASK)" in printed
    assert f"pretrain: {len(wiki_docs):,} documents, {len(texts['wiki.txt']):,} characters" in printed
    n_test = len(texts["birth_test_inputs.tsv"].splitlines())
    assert f"finetune: {n_train - 50:,} train / 50 val (holdout) questions; dev {n_dev:,}, test inputs {n_test:,}" in printed
    assert len(wiki_docs) == n_train + n_dev + len(texts["birth_test_inputs.tsv"].splitlines())  # one each
    for sub in ("pretrain", "finetune"):
        meta = load_meta(os.path.join(folder, sub))
        assert meta["vocab_size"] == n_chars + 2 and meta["tokenizer"]["chars"][:2] == "□⁇"
    assert load_meta(os.path.join(folder, "pretrain"))["train_tokens"] == len(texts["wiki.txt"])


def test_corruption_spec_over_many_draws():
    block_size = 128
    doc = np.arange(2, 302)  # 300 distinct ids, longer than any truncation
    rng = np.random.default_rng(0)
    kept, spans = [], []
    for _ in range(20000):
        prefix, span, suffix = corrupt(doc, rng, block_size)
        n = len(prefix) + len(span) + len(suffix)
        assert np.array_equal(np.concatenate([prefix, span, suffix]), doc[:n])  # reconstructs the truncation
        assert 1 <= len(span) <= max(1, n // 2 - 1)
        kept.append(n)
        spans.append(len(span))
    kept, spans = np.array(kept), np.array(spans)
    assert kept.min() == 4 and kept.max() == int(block_size * 7 / 8)
    assert set(kept) == set(range(4, 113))  # every truncation length happens
    assert spans.mean() == pytest.approx((kept / 4).mean(), rel=0.02)  # mean span: a quarter of the kept length
    even = kept % 2 == 0
    assert spans[even].mean() == pytest.approx((kept[even] / 4).mean(), rel=0.02)
    starts = [len(corrupt(doc, rng, block_size)[0]) for _ in range(2000)]
    assert min(starts) == 0 and max(starts) > 50  # the span can start anywhere, the very beginning included
    short = np.arange(2, 12)  # shorter than most truncations: the whole document is kept
    assert np.mean([sum(map(len, corrupt(short, rng, block_size))) == 10 for _ in range(500)]) > 0.9


def test_span_example_layout():
    doc, block_size = np.arange(2, 202), 64
    for seed in range(50):
        prefix, span, suffix = corrupt(doc, np.random.default_rng(seed), block_size)
        x, y = span_corruption_example(doc, np.random.default_rng(seed), block_size)
        want = np.concatenate([prefix, [MASK], suffix, [MASK], span])
        assert x.shape == y.shape == (block_size,)
        assert np.array_equal(x[:len(want)], want) and (x[len(want):] == PAD).all()
        assert np.array_equal(y[:len(want) - 1], want[1:])  # targets are the inputs shifted by one
        assert (y[len(want) - 1:] == -1).all()  # PAD targets are ignored


def test_finetune_mask_covers_exactly_the_answer(bp_data):
    folder, _ = bp_data
    q, a = np.array([5, 6, 7, 8]), np.array([9, 10])
    x, y = qa_example(q, a, 16)
    assert x.tolist() == [5, 6, 7, 8, MASK, 9, 10, MASK] + [PAD] * 8
    assert np.flatnonzero(y != -1).tolist() == [4, 5, 6] and y[4:7].tolist() == [9, 10, MASK]
    # on the prepared files: the scored targets spell "answer⁇" and nothing else
    meta = load_meta(os.path.join(folder, "finetune"))
    tok = Tokenizer.from_meta(meta)
    batches = open_batches(os.path.join(folder, "finetune"), "val", meta, 128, "cpu")  # the holdout
    X, Y = batches.get(batches.draw(np.random.default_rng(0), 1, 8)[0])
    answers = dict(line.split("\t") for line in course_file("birth_places_train.tsv").split("\n") if line)
    for xr, yr in zip(X.tolist(), Y.tolist()):
        text = tok.decode(xr)
        question = text.split("⁇")[0]
        assert tok.decode([t for t in yr if t != -1]) == answers[question] + "⁇"


def test_batches_are_trimmed_and_trimming_is_exact(bp_data):
    folder, _ = bp_data
    ddir = os.path.join(folder, "pretrain")
    meta = load_meta(ddir)
    batches = open_batches(ddir, "train", meta, 128, "cpu")
    rows = batches.draw(np.random.default_rng(1), 3, 8)
    again = batches.draw(np.random.default_rng(1), 3, 8)
    assert np.array_equal(rows, again)  # batches come from the generator, nothing else
    X, Y = batches.get(rows[0])
    T = X.size(1)
    assert T < 128 and (Y[:, -1] != -1).any()  # cut to the longest row, no shorter
    assert torch.equal(X, batches.get(rows[0])[0])  # same seeds, same corruptions
    # the same rows padded to the full block give the same loss, for vanilla and synthesizer attention
    Xf = torch.cat([X, torch.full((8, 128 - T), PAD)], 1)
    Yf = torch.cat([Y, torch.full((8, 128 - T), -1)], 1)
    for attention, impl in (("vanilla", "sdpa"), ("synthesizer", "manual")):
        torch.manual_seed(0)
        model = GPT(GPTConfig(n_layer=2, n_head=2, n_embd=32, block_size=128, vocab_size=meta["vocab_size"],
                              dropout=0.0, attention=attention, attn_impl=impl)).eval()
        with torch.no_grad():
            assert model(X, Y)[1].item() == pytest.approx(model(Xf, Yf)[1].item(), abs=1e-5)


def test_length_bands_keep_every_example_equally_likely():
    """Banded batches: each batch's examples come from one narrow band of lengths, but over
    many batches every truncation length (and every QA pair) is as likely as without bands."""
    block_size, n_batches, batch = 128, 4000, 8
    doc = np.arange(2, 302)
    source = SpanCorruption([doc], block_size, length_bands=8)
    rng = np.random.default_rng(0)
    kept, widths = [], []
    for _ in range(n_batches):
        xs = source.examples(rng.integers(0, 2**63 - 1, size=batch))
        n = np.array([(x != PAD).sum() - 2 for x, _ in xs])  # kept length: the row less its two masks
        kept.extend(n)
        widths.append(n.max() - n.min())
    kept = np.array(kept)
    assert max(widths) <= 13  # one band of the 109 lengths 4..112 (8 bands of 13 or 14)
    counts = np.bincount(kept, minlength=113)[4:]
    assert kept.min() == 4 and kept.max() == 112 and (counts > 0).all()
    expected = len(kept) / 109  # uniform over 4..112, as without bands
    chi2 = ((counts - expected) ** 2 / expected).sum()
    assert chi2 < 160, chi2  # 108 degrees of freedom: p < 0.001 above about 155
    unbanded = SpanCorruption([doc], block_size)  # one band is the plain draw
    xs = unbanded.examples(rng.integers(0, 2**63 - 1, size=2000))
    assert np.ptp([(x != PAD).sum() for x, _ in xs]) > 100
    # QA: pairs of many lengths, each picked equally often, like lengths together
    pairs = [(np.full(3 + i % 40, 5), np.array([9])) for i in range(200)]
    qa = QA(pairs, 64, length_bands=4)
    picks = []
    for _ in range(3000):
        xs = qa.examples(rng.integers(0, 2**63 - 1, size=8))
        lens = [(x != PAD).sum() for x, _ in xs]
        assert max(lens) - min(lens) <= 10  # a quarter of the 40 lengths
        picks.extend(lens)
    counts = np.bincount(picks)[5:]  # row length = question + answer + 2 masks: 6 .. 45
    assert len(counts) == 41 and counts[0] == 0 and (counts[1:] > 0).all()
    assert counts[1:].std() / counts[1:].mean() < 0.1  # each length 5 pairs of 200: equally likely
    # a batch takes distinct pairs while its band has enough of them
    distinct = [(np.arange(3 + i), np.array([9])) for i in range(40)]
    xs = QA(distinct, 64, length_bands=2).examples([7] * 20)
    assert len({int((x != PAD).sum()) for x, _ in xs}) == 20


def test_read_questions_parse_and_accuracy(tmp_path):
    dev = tmp_path / "dev.tsv"
    dev.write_text("Where was Ada Lovelace born?\tLondon\nWhere was Kurt Gödel born?\tBrno\n"
                   "Where was Frida Kahlo born?\tCoyoacán\n", encoding="utf-8")
    qs, answers = read_questions(str(dev))
    assert qs[1] == "Where was Kurt Gödel born?" and answers == ["London", "Brno", "Coyoacán"]
    assert parse_answer("Brno⁇□□", "⁇") == "Brno" and parse_answer("Brn", "⁇") == "Brn"
    assert accuracy(["London", "Brno", "Mexico City"], answers) == (2, 3)
    assert accuracy(["London"] * 3, answers) == (1, 3)
    test = tmp_path / "test.tsv"
    test.write_text("Where was Ada Lovelace born?\nWhere was Kurt Gödel born?\n", encoding="utf-8")
    assert read_questions(str(test)) == (["Where was Ada Lovelace born?", "Where was Kurt Gödel born?"], None)
    assert "1/3 correct = 33.3%" in in_process("evaluate.py", "--baseline_only=True", f"--questions={dev}")
    lines = course_file("birth_dev.tsv").splitlines()
    n = london(lines)
    assert 0 < n < len(lines) / 10  # London is the most common birthplace, but rare enough
    printed = in_process("evaluate.py", "--baseline_only=True", f"--questions={fixture('birthplace', 'birth_dev.tsv')}")
    assert f"{n}/{len(lines)} correct = {100 * n / len(lines):.1f}%" in printed  # CS224N's London baseline
    with pytest.raises(SystemExit) as e:
        in_process("evaluate.py", "--baseline_only=True", f"--questions={test}")
    assert e.value.code.startswith("error: ") and "has no answers" in e.value.code
    p = run("evaluate.py", "--baseline_only=True", f"--questions={test}", check=False)  # the same, typed
    assert p.returncode != 0 and p.stderr.startswith("error: ") and "has no answers" in p.stderr


def test_paired_comparison_of_two_predictions_files(tmp_path):
    from evals.probe import mcnemar
    assert mcnemar(0, 5) == 2 / 32 and mcnemar(5, 0) == 2 / 32  # 5 fair coins all one way: 1/32 a side
    assert mcnemar(1, 9) == pytest.approx(2 * (1 + 9 + 1) / 2 ** 10) and mcnemar(3, 3) == 1.0 and mcnemar(0, 0) == 1.0
    dev = tmp_path / "dev.tsv"
    places = ["London", "Paris", "Oslo", "Rome", "Lima", "Kyiv", "Bern", "Baku"]
    dev.write_text("".join(f"Where was P{i} born?\t{p}\n" for i, p in enumerate(places)), encoding="utf-8")
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    a.write_text("London\nParis\nOslo\nRome\nLima\nx\nx\nx\n", encoding="utf-8")  # 5 right
    b.write_text("London\nx\nx\nx\nx\nx\nx\nBaku\n", encoding="utf-8")  # 2 right: one shared, one its own
    printed = in_process("evaluate.py", f"--paired={a},{b}", f"--questions={dev}")
    assert f"{a}: 5/8 correct = 62.5% (standard error 17.1)" in printed and f"{b}: 2/8 correct = 25.0%" in printed
    assert f"both 1, only A 4, only B 1; McNemar's exact test p = {2 * 6 / 32:.4g}" in printed
    b.write_text("London\n", encoding="utf-8")  # predictions of other questions: refused, with what to do
    with pytest.raises(SystemExit) as e:
        in_process("evaluate.py", f"--paired={a},{b}", f"--questions={dev}")
    assert e.value.code == f"error: {b} has 1 lines for 8 questions; give predictions of the same questions"


def test_paired_comparison_of_what_two_models_stored(tmp_path):
    """Two recall files (--task=recall) compare by their own marks of what is stored; a recall file
    of other people is refused."""
    dev = tmp_path / "dev.tsv"
    places = ["London", "Paris", "Oslo", "Rome"]
    dev.write_text("".join(f"Where was P{i} born?\t{p}\n" for i, p in enumerate(places)), encoding="utf-8")
    a, b = tmp_path / "a.recall.txt", tmp_path / "b.recall.txt"
    a.write_text("".join(f"P{i}. P{i} was born in {p} .\t{p}\t1\n" for i, p in enumerate(places)), encoding="utf-8")
    b.write_text("".join(f"P{i}. P{i} is a poet .\t{p}\t{int(i == 0)}\n" for i, p in enumerate(places)),
                 encoding="utf-8")
    printed = in_process("evaluate.py", f"--paired={a},{b}", f"--questions={dev}")
    assert f"{a}: 4/4 correct" in printed and f"{b}: 1/4 correct" in printed
    assert f"both 1, only A 3, only B 0; McNemar's exact test p = {2 / 8:.4g}" in printed
    b.write_text(b.read_text(encoding="utf-8").replace("\tRome\t", "\tLima\t"), encoding="utf-8")
    with pytest.raises(SystemExit) as e:
        in_process("evaluate.py", f"--paired={a},{b}", f"--questions={dev}")
    assert e.value.code == f"error: {b} line 4 is about 'Lima', not 'Rome'; give a recall file of the same questions"


def test_paired_comparison_of_two_seeds_a_side(tmp_path):
    """Arms of several files: per question the number of files right, and the sign test on those."""
    dev = tmp_path / "dev.tsv"
    places = ["London", "Paris", "Oslo", "Rome", "Lima", "Kyiv", "Bern", "Baku"]
    dev.write_text("".join(f"Where was P{i} born?\t{p}\n" for i, p in enumerate(places)), encoding="utf-8")
    files = {}
    for name, right in {"a1": "11110000", "a2": "11101100", "b1": "10000001", "b2": "11000000"}.items():
        files[name] = tmp_path / f"{name}.txt"
        files[name].write_text("".join(f"{p if r == '1' else 'x'}\n" for p, r in zip(places, right)), encoding="utf-8")
    # per question, A's count - B's: 0, 1, 2, 1, 1, 1, 0, -1: A ahead on 5, B on 1, level on 2
    printed = in_process("evaluate.py", f"--paired={files['a1']}+{files['a2']},{files['b1']}+{files['b2']}",
                         f"--questions={dev}")
    assert f"{files['a2']}: 5/8 correct = 62.5%" in printed and "mean of 2: 56.2%" in printed and "mean of 2: 25.0%" in printed
    assert f"per question over 2+2 files: A right more often 5, B 1, as often 2; sign test p = {2 * 7 / 64:.4g}" in printed
    # one file a side is McNemar's test, as before
    printed = in_process("evaluate.py", f"--paired={files['a1']},{files['b1']}", f"--questions={dev}")
    assert f"both 1, only A 3, only B 1; McNemar's exact test p = {2 * 5 / 16:.4g}" in printed
    with pytest.raises(SystemExit) as e:  # an empty name in an arm
        in_process("evaluate.py", f"--paired={files['a1']}+,{files['b1']}", f"--questions={dev}")
    assert e.value.code.startswith("error: --paired=") and "A1+A2,B1+B2" in e.value.code
    with pytest.raises(SystemExit) as e:  # two files against one: the counts would not compare
        in_process("evaluate.py", f"--paired={files['a1']}+{files['a2']},{files['b1']}", f"--questions={dev}")
    assert e.value.code.startswith("error: --paired=") and "gives 2 and 1 files" in e.value.code


@pytest.mark.slow
@pytest.mark.parametrize("attention", ["vanilla", "synthesizer"])
def test_pretrain_finetune_evaluate_pipeline(bp_data, tmp_path, attention):
    folder, _ = bp_data
    pre, fin = str(tmp_path / "pre"), str(tmp_path / "fin")
    arch = [f"--attention={attention}"] + (["--attn_impl=manual"] if attention == "synthesizer" else [])
    run("train.py", f"--data_dir={folder}/pretrain", f"--out_dir={pre}", *TINY, *arch, "--max_iters=12",
        "--eval_interval=12", "--learning_rate=3e-3")
    p = run("train.py", f"--data_dir={folder}/finetune", f"--out_dir={fin}", f"--init_from=ckpt:{pre}",
            "--device=cpu", "--dtype=float32", "--batch_size=16", "--gradient_accumulation_steps=1", "--eval_iters=2", "--max_iters=6",
            "--eval_interval=6", "--warmup_iters=1", "--learning_rate=3e-3")
    ckpt = load_checkpoint(os.path.join(fin, "ckpt.pt"))
    assert ckpt["iter_num"] == 6  # a fresh count: not 12 + 6
    assert ckpt["model_args"]["n_embd"] == 32 and ckpt["model_args"]["attention"] == attention  # the pretrained model
    with open(os.path.join(fin, "config.json")) as f:  # and the run's record says so, not the finetune's defaults
        recorded = json.load(f)["config"]
    assert (recorded["n_embd"], recorded["attention"]) == (32, attention) == (ckpt["config"]["n_embd"],
                                                                             ckpt["config"]["attention"])
    evals = [json.loads(line) for line in open(os.path.join(fin, "log.jsonl")) if "val_loss" in line]
    uniform = math.log(load_meta(os.path.join(folder, "finetune"))["vocab_size"])
    # starts from the pretrained weights, not from a uniform guess (ln 257 = 5.55 on the course files)
    assert evals[0]["val_loss"] < uniform - 0.5, p.stdout
    # a slice of the dev and test files keeps the test quick
    dev, test = tmp_path / "dev.tsv", tmp_path / "test_inputs.tsv"
    dev_lines = course_file("birth_dev.tsv").splitlines(keepends=True)[:40]
    dev.write_text("".join(dev_lines), encoding="utf-8")
    test.write_text("".join(course_file("birth_test_inputs.tsv").splitlines(keepends=True)[:30]), encoding="utf-8")
    args = (f"--out_dir={fin}", f"--questions={dev}", "--device=cpu", "--max_answer_tokens=16")
    if attention == "vanilla":  # the command line once; the rest in this process
        printed = run("evaluate.py", *args).stdout
    else:
        printed = in_process("evaluate.py", *args)
    assert "model: " in printed and "/40 correct" in printed
    assert f"baseline ('London' every time): {london(dev_lines)}/40" in printed
    with open(os.path.join(fin, "dev.predictions.txt"), encoding="utf-8") as f:
        assert len(f.read().split("\n")) == 41
    if attention == "synthesizer":
        return  # the rest does not depend on the attention
    out = str(tmp_path / "test.txt")
    in_process("evaluate.py", f"--out_dir={fin}", f"--questions={test}", f"--predictions={out}",
               "--max_answer_tokens=16")
    with open(out, encoding="utf-8") as f:
        assert len(f.read().split("\n")) == 31
    printed = in_process("evaluate.py", f"--out_dir={pre}", "--split=val", "--eval_iters=3", "--batch_size=8")
    assert "val loss" in printed and "perplexity" in printed
    # without --questions: the dataset's own dev file (accuracy) and test inputs (predictions)
    printed = in_process("evaluate.py", f"--out_dir={fin}", "--task=qa", "--max_answer_tokens=16")
    assert f"birth_dev.tsv: wrote 100 predictions to {fin}/birth_dev.predictions.txt" in printed
    assert f"birth_test_inputs.tsv: wrote 60 predictions to {fin}/birth_test_inputs.predictions.txt" in printed
    assert printed.count("/100 correct") == 2  # the model and the baseline, on dev only
    # what pretraining stored about the holdout's people, beside what the finetuned model answers
    printed = in_process("evaluate.py", f"--out_dir={pre}", "--task=recall", f"--finetuned={fin}",
                         "--questions=holdout", "--max_answer_tokens=16")
    stored = int(printed.split('names the birthplace): ')[1].split("/")[0])
    answered = int(printed.split("exact match): ")[1].split("/")[0])
    both, only_s, only_a, neither = (int(printed.split(k)[1].split(",")[0].split()[0]) for k in
                                     ("stored and answered ", "stored only ", "answered only ", "neither "))
    assert both + only_s == stored and both + only_a == answered and both + only_s + only_a + neither == 50
    from evals.probe import names_place
    with open(os.path.join(pre, "holdout.recall.txt"), encoding="utf-8") as f:
        rows = [line.rstrip("\n").split("\t") for line in f]
    assert len(rows) == 50 and sum(int(h) for _, _, h in rows) == stored
    assert all(int(h) == names_place(text, place) for text, place, h in rows)


def decoded_lines(folder, split):
    meta = load_meta(folder)
    tok = Tokenizer.from_meta(meta)
    ids = np.fromfile(os.path.join(folder, f"{split}.bin"), dtype=meta["dtype"])
    return [line for line in tok.decode(ids.tolist()).split("\n") if line]


def test_holdout_is_a_fixed_part_of_the_training_questions(bp_data, tmp_path):
    folder, _ = bp_data
    fin = os.path.join(folder, "finetune")
    train_lines = course_file("birth_places_train.tsv").splitlines()
    kept, held = decoded_lines(fin, "train"), decoded_lines(fin, "val")
    assert len(held) == 50 and len(kept) == 250 and not set(kept) & set(held)
    assert sorted(kept + held) == sorted(train_lines)  # nothing lost, nothing added
    assert kept == [q for q in train_lines if q not in set(held)]  # the file's order is kept
    with open(os.path.join(fin, "holdout.tsv"), encoding="utf-8") as f:
        assert f.read().splitlines() == held
    meta = load_meta(fin)
    assert meta["holdout"] == 50 and meta["questions"] == {"dev": "birth_dev.tsv", "test": "birth_test_inputs.tsv",
                                                           "holdout": "holdout.tsv"}
    for name in ("birth_dev.tsv", "birth_test_inputs.tsv"):  # copies: the data came in from elsewhere
        with open(os.path.join(fin, name), encoding="utf-8") as f:
            assert f.read() == course_file(name)
    pre_meta = load_meta(os.path.join(folder, "pretrain"))  # the pretraining dataset names the same files
    assert {k: os.path.normpath(os.path.join(folder, "pretrain", v)) for k, v in pre_meta["questions"].items()} == \
        {k: os.path.join(fin, v) for k, v in meta["questions"].items()}
    # the same draw on a second prepare; --holdout=0 is the course's split (val = dev)
    from data.birthplace.prepare import main
    main([f"--input={fixture('birthplace')}", f"--out_dir={tmp_path}/a", "--holdout=50"])
    assert decoded_lines(f"{tmp_path}/a/finetune", "val") == held
    main([f"--input={fixture('birthplace')}", f"--out_dir={tmp_path}/b", "--holdout=0"])
    assert decoded_lines(f"{tmp_path}/b/finetune", "val") == course_file("birth_dev.tsv").splitlines()
    assert decoded_lines(f"{tmp_path}/b/finetune", "train") == train_lines
    assert "holdout" not in load_meta(f"{tmp_path}/b/finetune")["questions"]
    with pytest.raises(SystemExit) as e:  # refused before anything is written
        main([f"--input={fixture('birthplace')}", f"--out_dir={tmp_path}/c", "--holdout=300"])
    assert "--holdout=300" in str(e.value.code) and not os.path.exists(f"{tmp_path}/c")


def test_holdout_is_drawn_by_person(tmp_path):
    """A person asked about twice (the course's train file has 9, some with two answers) lands whole
    on one side of the split, the draw is the same on every prepare, and it holds exactly n."""
    from data.birthplace.prepare import holdout_rows, main
    from data.birthplace.batches import PERSON
    lines = course_file("birth_places_train.tsv").splitlines()
    # 40 of the people asked a second time, with another answer, at the file's end as in the course's
    twice = [f"{q}\tSomewhere {i}" for i, q in enumerate(line.split("\t")[0] for line in lines[::7][:40])]
    for name in ("wiki.txt", "birth_dev.tsv", "birth_test_inputs.tsv"):
        (tmp_path / name).write_text(course_file(name), encoding="utf-8")
    (tmp_path / "birth_places_train.tsv").write_text("\n".join(lines + twice) + "\n", encoding="utf-8")
    person = lambda line: PERSON.fullmatch(line.split("\t")[0]).group(1)  # noqa: E731
    for n in (1, 37, 50, 120):
        rows = holdout_rows([line.split("\t")[0] for line in lines + twice], n)
        held = {person((lines + twice)[i]) for i in rows}
        kept = {person(line) for i, line in enumerate(lines + twice) if i not in set(rows)}
        assert len(rows) == n and not held & kept
    assert holdout_rows(["a", "b", "a", "c"], 2) in ([0, 2], [1, 3])  # other questions: each its own person
    for out in ("a", "b"):
        main([f"--input={tmp_path}", f"--out_dir={tmp_path}/{out}", "--holdout=60"])
    held, kept = decoded_lines(f"{tmp_path}/a/finetune", "val"), decoded_lines(f"{tmp_path}/a/finetune", "train")
    assert len(held) == 60 and len(kept) == len(lines) + 40 - 60
    assert not {person(q) for q in held} & {person(q) for q in kept}
    assert any(person(q) in {person(t) for t in twice} for q in held)  # some asked-twice person went out, whole
    assert held == decoded_lines(f"{tmp_path}/b/finetune", "val")
    pre = decoded_lines(f"{tmp_path}/a/pretrain", "qa")  # mixed training's questions: the kept side's alone
    assert pre == kept


def test_question_files_by_name_from_meta(bp_data):
    from evals.probe import question_files
    folder, _ = bp_data
    fin = os.path.join(folder, "finetune")
    meta = load_meta(fin)
    assert question_files(meta, fin, "") == [os.path.join(fin, "birth_dev.tsv"), os.path.join(fin, "birth_test_inputs.tsv")]
    assert question_files(meta, fin, "holdout") == [os.path.join(fin, "holdout.tsv")]
    assert question_files(meta, fin, "some/file.tsv") == ["some/file.tsv"]
    with pytest.raises(ValueError, match="neither a file nor one of"):
        question_files(meta, fin, "devv")
    with pytest.raises(ValueError, match="names no question files"):
        question_files({}, fin, "")
    # the London baseline on the holdout, found through the dataset
    printed = in_process("evaluate.py", "--baseline_only=True", f"--data_dir={fin}", "--questions=holdout")
    held = decoded_lines(fin, "val")
    assert f"{london(held)}/50 correct" in printed


def test_names_place_whole_words_only():
    from evals.probe import names_place
    assert names_place(" Jo Bloggs was born in London .", "London")
    assert names_place(" a painter born in London , England , in 1901", "London")
    assert names_place("London is where he was born", "London")
    assert not names_place(" born in New London , Connecticut", "London")
    assert not names_place(" born in Londonderry .", "London")
    assert not names_place(" he crossed London Bridge", "London")
    assert not names_place(" born in Paris .", "London")
    assert names_place(" born in Rio de Janeiro , Brazil", "Rio de Janeiro")
    assert names_place(" born in Kraków .", "Kraków") and not names_place(" born in Krakówek", "Kraków")


class ScriptedModel(torch.nn.Module):
    """A stand-in for GPT whose greedy continuation of each prompt is a given text."""

    def __init__(self, tok, continuations, block_size=128):
        super().__init__()
        self.tok, self.continuations = tok, continuations
        self.config = GPTConfig(block_size=block_size)

    def generate(self, idx, max_new_tokens, **kwargs):
        rows = []
        for row in idx.tolist():
            name = self.tok.decode(row)[:-1]  # the prompt less its "."
            rows.append(row + self.tok.encode(self.continuations[name])[:max_new_tokens])
        width = max(map(len, rows))
        return torch.tensor([r + [PAD] * (width - len(r)) for r in rows])


def test_recall_cuts_each_continuation_at_the_paragraph_end_or_mask(bp_data):
    from evals.probe import names_place, recall
    folder, _ = bp_data
    tok = Tokenizer.from_meta(load_meta(os.path.join(folder, "pretrain")))
    said = {"Ada Lovelace": " Ada Lovelace was born in London .\nLater text in Paris",
            "Kurt Gödel": " Kurt Gödel was a logician ⁇ born in Brno",
            "Li Bai": " Li Bai was born in Suyab"}
    texts = recall(ScriptedModel(tok, said), tok, MASK, list(said), "cpu")
    assert texts == [" Ada Lovelace was born in London .", " Kurt Gödel was a logician ", " Li Bai was born in Suyab"]
    assert [names_place(t, a) for t, a in zip(texts, ["Paris", "Brno", "Suyab"])] == [False, False, True]
