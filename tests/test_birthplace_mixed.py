"""Mixed training for the knowledge probe (--qa_share): the training people's questions among the
span-corruption examples of pretraining, at a share of the tokens; windows that start anywhere in a
paragraph (--random_windows). On the invented people of tests/data/birthplace, 50 of the 300
training questions held out (conftest's bp_data)."""

import os
import re

import numpy as np
import pytest
import torch

from checkpoint import load_checkpoint
from conftest import in_process, run
from data.birthplace.batches import MASK, PAD, Mixed, SpanCorruption, corrupt, load_split
from data.common import load_meta
from data.tokenizer import Tokenizer
from data.loader import open_batches
from checkpoint import read_log

TINY = ["--device=cpu", "--dtype=float32", "--n_layer=2", "--n_head=2", "--n_embd=32", "--block_size=128",
        "--batch_size=16", "--gradient_accumulation_steps=1", "--eval_iters=2", "--log_interval=1", "--compile=False",
        "--warmup_iters=2", "--learning_rate=3e-3"]


def question_lines(folder, split):
    """The "question<TAB>answer" lines of a prepared split (train.bin, val.bin or qa.bin), decoded."""
    meta = load_meta(folder)
    ids = np.fromfile(os.path.join(folder, f"{split}.bin"), dtype=meta["dtype"])
    return [line for line in Tokenizer.from_meta(meta).decode(ids.tolist()).split("\n") if line]


def mixed(folder, share, **kw):
    meta = load_meta(os.path.join(folder, "pretrain"))
    return load_split(os.path.join(folder, "pretrain"), "train", meta, 128, qa_share=share, **kw), meta


def draw(source, n_batches, batch_size=32, seed=0):
    """n_batches batches of (x, y) pairs, from fixed seeds."""
    rng = np.random.default_rng(seed)
    return [source.examples(rng.integers(0, 2**63 - 1, size=batch_size)) for _ in range(n_batches)]


def is_question(y):
    """A question's first targets are ignored (the loss is on the answer); span corruption scores from the start."""
    return y[0] == -1


def test_prepare_writes_the_training_questions_beside_the_documents(bp_data):
    folder, printed = bp_data
    pre, fin = os.path.join(folder, "pretrain"), os.path.join(folder, "finetune")
    mixed_in = question_lines(pre, "qa")
    assert mixed_in == question_lines(fin, "train")  # the finetune's questions: the training ones less the holdout
    assert len(mixed_in) == 250
    with open(os.path.join(fin, "birth_dev.tsv"), encoding="utf-8") as f:
        dev = f.read().splitlines()
    assert not set(mixed_in) & set(question_lines(fin, "val")) and not set(mixed_in) & set(dev)
    meta = load_meta(pre)
    assert meta["qa_tokens"] == os.path.getsize(os.path.join(pre, "qa.bin")) // 2
    assert meta["max_token_id"] == max(np.fromfile(os.path.join(pre, s + ".bin"), dtype=meta["dtype"]).max()
                                       for s in ("train", "qa"))
    assert "pretrain: " in printed and "250 questions to mix in" in printed


@pytest.mark.parametrize("share, tolerance", [(0.1, 0.01), (0.4, 0.02)])
def test_mixed_batches_have_the_chosen_share_of_tokens(bp_data, share, tolerance):
    """Over 800 batches of 32 from fixed seeds, the questions' share of the tokens is the chosen one,
    and their share of the examples the probability the source computed from the mean lengths.
    The tolerances are over 4 standard errors (0.0024 and 0.0044, measured over 12 other seeds; a
    batch's span-corruption examples share a length band, so they vary together), yet below
    the gap between the two shares (0.04 and 0.09): a share of examples would fail it."""
    folder, _ = bp_data
    source, _ = mixed(folder, share, length_bands=8)
    examples = [pair for batch in draw(source, 800) for pair in batch]
    asks = np.array([is_question(y) for _, y in examples])
    tokens = np.array([(x != PAD).sum() for x, _ in examples])
    assert tokens[asks].sum() / tokens.sum() == pytest.approx(share, abs=tolerance)
    assert asks.mean() == pytest.approx(source.p_question, abs=tolerance)
    assert source.p_question - share > 2 * tolerance
    # questions are shorter than span-corruption examples here, so it takes more of them than the share
    assert tokens[asks].mean() < tokens[~asks].mean() and source.p_question > share
    assert all((x == MASK).sum() == 2 for x, _ in examples)  # both kinds: two masks each


def test_mixed_batches_are_deterministic_per_seed(bp_data):
    folder, _ = bp_data
    source, _ = mixed(folder, 0.3)  # one length band: an example depends on its own seed alone
    seeds = np.random.default_rng(5).integers(0, 2**63 - 1, size=64)
    first, again = source.examples(seeds), source.examples(seeds)
    assert all(np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1]) for a, b in zip(first, again))
    alone = [source.examples([s])[0] for s in seeds[::-1]][::-1]  # each seed in a batch of its own, in another order
    assert all(np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1]) for a, b in zip(first, alone))
    asks = [is_question(y) for _, y in first]
    assert 0 < sum(asks) < len(asks)
    # with length bands the batch's band comes from its first seed, but whether an example is a question,
    # and which question, still comes from its own
    banded, _ = mixed(folder, 0.3, length_bands=8)
    shuffled = banded.examples(seeds[::-1])[::-1]
    assert [is_question(y) for _, y in shuffled] == asks
    assert all(np.array_equal(a[0], b[0]) for a, b, ask in zip(first, shuffled, asks) if ask)
    other = source.examples(seeds + 1)
    assert sum(np.array_equal(a[0], b[0]) for a, b in zip(first, other)) < 8  # other seeds, other examples
    # a share of 1 is questions only (a QA-only phase); the val split never holds questions
    only, _ = mixed(folder, 1.0)
    assert all(is_question(y) for _, y in only.examples(seeds))
    meta = load_meta(os.path.join(folder, "pretrain"))
    val = load_split(os.path.join(folder, "pretrain"), "val", meta, 128, qa_share=0.5)
    assert isinstance(val, SpanCorruption) and not any(is_question(y) for _, y in val.examples(seeds))


def test_holdout_and_dev_people_never_appear_in_the_mixed_questions(bp_data):
    folder, _ = bp_data
    fin = os.path.join(folder, "finetune")
    source, meta = mixed(folder, 0.5, length_bands=4)
    tok = Tokenizer.from_meta(meta)
    asked = [tok.decode(x[x != PAD].tolist()) for batch in draw(source, 200) for x, y in batch if is_question(y)]
    asked = {text.split("⁇")[0] + "\t" + text.split("⁇")[1] for text in asked}  # question<TAB>answer
    train = set(question_lines(fin, "train"))
    assert asked <= train and len(asked) > 0.95 * len(train)  # nearly all 250 come up, and nothing else
    with open(os.path.join(fin, "birth_dev.tsv"), encoding="utf-8") as f:
        dev = f.read().splitlines()

    def person(line):
        return line.split("\t")[0].removeprefix("Where was ").removesuffix(" born?")

    kept_out = {person(q) for q in question_lines(fin, "val") + dev}
    assert len(kept_out) == 150 and not kept_out & {person(q) for q in asked}


def test_random_windows_start_anywhere_in_the_paragraph():
    block_size, doc = 128, np.arange(2, 302)  # 300 distinct ids, longer than any window
    rng = np.random.default_rng(0)
    starts, ends = [], []
    for _ in range(5000):
        prefix, span, suffix = corrupt(doc, rng, block_size, anywhere=True)
        window = np.concatenate([prefix, span, suffix])
        start = int(window[0]) - 2
        assert np.array_equal(window, doc[start:start + len(window)])  # one stretch of the document
        assert 4 <= len(window) <= int(block_size * 7 / 8)
        starts.append(start)
        ends.append(start + len(window))
    assert min(starts) == 0 and max(ends) == 300  # the beginning and the very end are both seen
    assert np.mean(np.array(starts) > 0) > 0.9
    # the default is the course's: every window starts at the beginning, from the same three draws as before
    a, b = np.random.default_rng(3), np.random.default_rng(3)
    for _ in range(200):
        keep = b.integers(4, 112, endpoint=True)
        span = b.integers(1, max(1, keep // 2 - 1), endpoint=True)
        start = b.integers(0, keep - span, endpoint=True)
        want = (doc[:start], doc[start:start + span], doc[start + span:keep])
        assert all(np.array_equal(p, q) for p, q in zip(corrupt(doc, a, block_size), want))
    short = np.arange(2, 12)  # shorter than the window: all of it, from its start
    assert all(sum(map(len, corrupt(short, rng, block_size, anywhere=True))) <= 10 for _ in range(200))
    source = SpanCorruption([doc], block_size, length_bands=8, anywhere=True)
    firsts = [x[0] for batch in draw(source, 50, 8) for x, _ in batch]
    assert len(set(firsts)) > 50  # examples no longer all open with the paragraph's first character


def test_mixing_options_are_refused_where_they_mean_nothing(bp_data, char_data, tmp_path):
    folder, _ = bp_data
    fin, pre = os.path.join(folder, "finetune"), os.path.join(folder, "pretrain")
    with pytest.raises(ValueError, match="finetuning dataset"):
        open_batches(fin, "train", load_meta(fin), 128, "cpu", qa_share=0.3)
    with pytest.raises(ValueError, match="finetuning dataset"):
        open_batches(fin, "train", load_meta(fin), 128, "cpu", random_windows=True)
    with pytest.raises(ValueError, match="--qa_share needs a dataset of whole examples"):
        open_batches(char_data, "train", load_meta(char_data), 32, "cpu", qa_share=0.3)
    assert open_batches(char_data, "train", load_meta(char_data), 32, "cpu", qa_share=0.0, random_windows=False) is not None
    with pytest.raises(ValueError, match="qa_share=1.5"):
        load_split(pre, "train", load_meta(pre), 128, qa_share=1.5)
    old = {k: v for k, v in load_meta(pre).items() if k != "qa_tokens"}  # prepared before mixed training
    with pytest.raises(ValueError, match="no questions to mix in"):
        load_split(pre, "train", old, 128, qa_share=0.3)
    assert isinstance(load_split(pre, "train", old, 128), SpanCorruption)  # without mixing it still works
    # the same from train.py, as one line
    p = run("train.py", f"--data_dir={char_data}", f"--out_dir={tmp_path}/out", "--device=cpu", "--qa_share=0.3",
            check=False)
    assert p.returncode == 1 and p.stderr.strip().startswith("error: --qa_share needs") and "Traceback" not in p.stderr


@pytest.mark.slow
def test_a_mixed_run_resumes_bit_exactly(bp_data, tmp_path):
    """8 steps of mixed pretraining in one run, or 4 and then a resume to 8: the same losses and
    weights, bit for bit, with dropout, length bands and random windows on."""
    folder, _ = bp_data
    a, b = str(tmp_path / "a"), str(tmp_path / "b")
    common = [f"--data_dir={folder}/pretrain", *TINY, "--qa_share=0.4", "--random_windows=True", "--length_bands=4",
              "--dropout=0.1", "--eval_interval=4"]
    run("train.py", f"--out_dir={a}", *common, "--max_iters=8")
    run("train.py", f"--out_dir={b}", *common, "--max_iters=4")
    p = run("train.py", f"--out_dir={b}", "--init_from=resume", "--max_iters=8")  # the mixing comes from the checkpoint
    assert "iter 5:" in p.stdout and "iter 1:" not in p.stdout
    steps_a, steps_b = read_log(os.path.join(a, "log.jsonl"))[0], read_log(os.path.join(b, "log.jsonl"))[0]
    assert [s["iter"] for s in steps_b] == list(range(1, 9))
    assert [s["train_loss"] for s in steps_a] == [s["train_loss"] for s in steps_b]
    ca, cb = load_checkpoint(os.path.join(a, "ckpt.pt")), load_checkpoint(os.path.join(b, "ckpt.pt"))
    assert cb["config"]["qa_share"] == 0.4 and cb["config"]["random_windows"] is True
    assert all(torch.equal(ca["model"][k], cb["model"][k]) for k in ca["model"])
    # the mix is not a no-op: without it the same run takes other steps
    c = str(tmp_path / "c")
    run("train.py", f"--out_dir={c}", *common, "--max_iters=4", "--qa_share=0.0")
    assert [s["train_loss"] for s in read_log(os.path.join(c, "log.jsonl"))[0]] != [s["train_loss"] for s in steps_a[:4]]
    # a QA-only phase at the end: a resume with the share given again, which wins over the checkpoint's
    run("train.py", f"--out_dir={b}", "--init_from=resume", "--max_iters=10", "--qa_share=1")
    cb = load_checkpoint(os.path.join(b, "ckpt.pt"))
    assert cb["iter_num"] == 10 and cb["config"]["qa_share"] == 1 and cb["config"]["random_windows"] is True
    # the pretrained model answers the holdout's questions itself (the pretraining folder names them)
    printed = in_process("evaluate.py", f"--out_dir={b}", "--questions=holdout", "--max_answer_tokens=16")
    assert "/50 correct" in printed


def test_evaluate_reads_a_kept_checkpoint(bp_data, tmp_path):
    """--ckpt=ckpt-<iter>.pt measures a checkpoint kept on the way (--keep_last), the same as that
    checkpoint as another folder's ckpt.pt would be, and writes its files under its own names."""
    folder, _ = bp_data
    d, alone = str(tmp_path / "run"), tmp_path / "alone"
    p = run("train.py", f"--data_dir={folder}/pretrain", f"--out_dir={d}", *TINY, "--qa_share=0.5", "--max_iters=6",
            "--ckpt_interval=3", "--keep_last=5", "--eval_interval=6")
    assert "at iter 3 (ckpt_interval)" in p.stdout
    assert sorted(f for f in os.listdir(d) if f.startswith("ckpt-")) == ["ckpt-00000003.pt", "ckpt-00000006.pt"]
    args = ["--questions=holdout", "--max_answer_tokens=8"]
    printed = in_process("evaluate.py", f"--out_dir={d}", "--ckpt=ckpt-00000003.pt", *args)
    assert f"checkpoint: {d}/ckpt-00000003.pt (iter 3)" in printed and "/50 correct" in printed
    alone.mkdir()
    (alone / "ckpt.pt").write_bytes(open(os.path.join(d, "ckpt-00000003.pt"), "rb").read())
    assert "(iter 3)" in in_process("evaluate.py", f"--out_dir={alone}", *args)
    with open(os.path.join(d, "holdout.ckpt-00000003.predictions.txt"), encoding="utf-8") as f:
        assert f.read() == (alone / "holdout.predictions.txt").read_text(encoding="utf-8")
    assert not os.path.exists(os.path.join(d, "holdout.predictions.txt"))  # ckpt.pt's own file is another
    in_process("evaluate.py", f"--out_dir={d}", "--ckpt=ckpt-00000003.pt", "--task=recall", *args)
    assert os.path.isfile(os.path.join(d, "holdout.ckpt-00000003.recall.txt"))
    with pytest.raises(SystemExit) as e:
        in_process("evaluate.py", f"--out_dir={d}", "--ckpt=ckpt-00000009.pt", *args)
    assert e.value.code == f"error: no ckpt-00000009.pt in {d}; it holds ckpt-00000003.pt, ckpt-00000006.pt, ckpt.pt"
    with pytest.raises(SystemExit) as e:
        in_process("evaluate.py", "--init_from=gpt2", "--ckpt=ckpt-00000003.pt", "--task=hellaswag")
    assert e.value.code.startswith("error: --ckpt picks a checkpoint of --out_dir")


def test_random_windows_leave_the_val_split_as_a_plain_run_has_it(bp_data):
    """--random_windows changes training only: val keeps every window at its paragraph's start, so
    val loss (and the best-checkpoint choice, and evaluate.py --task=loss) compares with a plain run's."""
    folder, _ = bp_data
    pre = os.path.join(folder, "pretrain")
    meta = load_meta(pre)
    splits = {w: {s: load_split(pre, s, meta, 128, random_windows=w) for s in ("train", "val")} for w in (False, True)}
    assert splits[True]["train"].anywhere and not splits[True]["val"].anywhere and not splits[False]["val"].anywhere
    plain, windowed = (draw(splits[w]["val"], 20, 8) for w in (False, True))
    assert all(np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
               for pa, pb in zip(plain, windowed) for a, b in zip(pa, pb))


def test_probe_batches_counts_tokens_and_question_passes(bp_data, tmp_path):
    """bench/probe_batches.py: what a pretraining step computes, from the loader's own batches."""
    folder, _ = bp_data
    pre = os.path.join(folder, "pretrain")
    plain = run("bench/probe_batches.py", f"--data_dir={pre}", "--sample=200", "--iters=1000", "--batch_size=16").stdout
    mix = run("bench/probe_batches.py", f"--data_dir={pre}", "--sample=200", "--iters=1000", "--batch_size=16",
              "--qa_share=0.5").stdout
    assert "0.00 questions" in plain and "passes" not in plain

    def numbers(text):
        m = re.search(r"per step: ([\d.]+) tokens \(([\d.]+) a row\), [\d.]+ targets scored, ([\d.]+) questions\n"
                      r"in 1,000 iterations: ([\d.]+)M tokens(?:, ([\d,]+) questions = ([\d.]+) passes over 250)?", text)
        return [float(v.replace(",", "")) if v else None for v in m.groups()]
    for out in (plain, mix):  # a row is at most a block, and the total is the step's tokens times the iterations
        step, row, _, total, _, _ = numbers(out)
        assert 4 < row <= 128 and total == pytest.approx(step * 1000 / 1e6, abs=0.06)
    source, _ = mixed(folder, 0.5)
    _, _, per_step, _, asked, passes = numbers(mix)
    assert per_step == pytest.approx(16 * source.p_question, rel=0.1)  # as often as Mixed draws them
    assert asked == pytest.approx(per_step * 1000, abs=1) and passes == pytest.approx(asked / 250, abs=0.06)
