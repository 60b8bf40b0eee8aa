"""Knowledge augmentation for the knowledge probe (prepare.py --augment, train.py --aug_share):
the rewrite rules, their determinism, that no question of dev or the holdout reaches training,
and the loader's draw. On the invented people of tests/data/birthplace."""

import os
import re

import numpy as np
import pytest

from conftest import exit_message, fixture, in_process, quietly, stop_writing_at
from data.birthplace.augment import augment, clauses, full_names, rewrite, split_opening
from data.birthplace.batches import MASK, load_split
from data.common import load_meta
from data.tokenizer import Tokenizer
from checkpoint import load_checkpoint

TINY = ["--device=cpu", "--dtype=float32", "--n_layer=2", "--n_head=2", "--n_embd=32", "--block_size=128",
        "--batch_size=16", "--gradient_accumulation_steps=1", "--eval_iters=2", "--log_interval=1", "--compile=False",
        "--warmup_iters=2"]


def wiki():
    with open(fixture("birthplace", "wiki.txt"), encoding="utf-8") as f:
        return [line for line in f.read().split("\n") if line]


def lines_of(folder, split):
    meta = load_meta(folder)
    ids = np.fromfile(os.path.join(folder, f"{split}.bin"), dtype=meta["dtype"])
    return [line for line in Tokenizer.from_meta(meta).decode(ids.tolist()).split("\n") if line]


@pytest.fixture(scope="module")
def aug_data(tmp_path_factory):
    """The fixtures prepared with rewrites, 50 training questions held out, twice with seed 0 and
    once with seed 1: {name: folder}."""
    from data.birthplace.prepare import main
    out = tmp_path_factory.mktemp("birthplace_aug")
    folders = {}
    for name, seed in (("a", 0), ("b", 0), ("c", 1)):
        folders[name] = str(out / name)
        quietly(main, [f"--input={fixture('birthplace')}", f"--out_dir={folders[name]}", "--holdout=50",
                       "--augment=fullname,shuffle,tail", "--copies=3", f"--augment_seed={seed}"])
    return folders


def test_the_opening_name_is_found_with_initials_and_suffixes():
    assert split_opening("Dan Norard. Dan Norard is a former mathematician born in Berlin .") == \
        ("Dan Norard", "Dan Norard is a former mathematician born in Berlin .")
    assert split_opening("Douglas P. Fry. Fry was born in Boston .") == ("Douglas P. Fry", "Fry was born in Boston .")
    assert split_opening("A. G. E. Blake. Blake was born in Bath .")[0] == "A. G. E. Blake"
    assert split_opening("John Rutledge, Jr.. Born in Charleston, he was a son .")[0] == "John Rutledge, Jr."
    assert split_opening("no opening here") == (None, "no opening here")


def test_full_names_replace_the_surname_alone_and_he_or_she():
    assert full_names("Halsos Peller", "Peller was born on 23 June 1932 in Athens .") == \
        "Halsos Peller was born on 23 June 1932 in Athens ."
    assert full_names("Jane R. Goodall", "Born in Yorkshire, Goodall studied; she left .") == \
        "Born in Yorkshire, Jane R. Goodall studied; Jane R. Goodall left ."
    # the full name where it stands, and a longer mention ("Douglas P Fry"), stay as they are
    assert full_names("Dan Norard", "Dan Norard is a mathematician .") == "Dan Norard is a mathematician ."
    assert full_names("Douglas P. Fry", "Douglas P Fry (born 1953) is a scholar .") == \
        "Douglas P Fry (born 1953) is a scholar ."
    assert full_names("John Rutledge, Jr.", "Rutledge was a son of John Rutledge .") == \
        "John Rutledge, Jr. was a son of John Rutledge ."
    assert full_names("Ann Heath", "Hebrew and Sheffield .") == "Hebrew and Sheffield ."  # whole words only


def test_shuffle_and_tail_keep_the_opening_and_the_clauses():
    p = "Pea A. Norell. According to one source, Norell was born in Kraków, the child of a historian ."
    name, text = split_opening(p)
    assert clauses(text) == ["According to one source", "Norell was born in Kraków", "the child of a historian"]
    rng = np.random.default_rng(0)
    seen_first = set()
    for _ in range(40):
        s = rewrite(p, ("shuffle",), rng)
        assert s.startswith("Pea A. Norell. ") and s.endswith(" .")
        assert sorted(clauses(split_opening(s)[1])) == sorted(clauses(text))  # the same clauses, in some order
        seen_first.add(clauses(split_opening(s)[1])[0])
        t = rewrite(p, ("tail",), rng)
        assert t.startswith("Pea A. Norell. ") and clauses(text)[-len(clauses(split_opening(t)[1])):] == \
            clauses(split_opening(t)[1])  # a run of the last clauses
    assert len(seen_first) == 3  # every clause comes first in some copy
    assert rewrite("no opening here", ("fullname", "shuffle"), rng) == "no opening here"


def test_rewrites_add_no_word_the_paragraph_does_not_hold():
    """No rule brings in a fact: every word of a copy is a word of its paragraph (its name included)."""
    paragraphs = wiki()
    copies = augment(paragraphs, ("fullname", "shuffle", "tail"), 3, seed=0)
    assert len(copies) == 3 * len(paragraphs)
    for i, p in enumerate(paragraphs):
        words = set(re.findall(r"\w+", p))
        for c in copies[3 * i:3 * i + 3]:
            assert set(re.findall(r"\w+", c)) <= words and c.split(". ")[0] == p.split(". ")[0]
    changed = sum(c != paragraphs[i // 3] for i, c in enumerate(copies))
    assert changed > len(copies) / 3  # the rules do rewrite (a one-clause paragraph with its full name stays)
    with pytest.raises(ValueError, match="unknown augmentation rule born"):
        augment(paragraphs, ("born",), 1, 0)


def test_augmentation_is_deterministic_per_seed(aug_data):
    read = {k: lines_of(os.path.join(f, "pretrain"), "aug") for k, f in aug_data.items()}
    assert read["a"] == read["b"] and read["a"] != read["c"]
    assert len(read["a"]) == 3 * len(wiki())
    meta = load_meta(os.path.join(aug_data["a"], "pretrain"))
    assert meta["augment"] == {"rules": ["fullname", "shuffle", "tail"], "copies": 3, "seed": 0}
    assert meta["aug_tokens"] == os.path.getsize(os.path.join(aug_data["a"], "pretrain", "aug.bin")) // 2
    # the rest of the folder is what a plain prepare writes
    assert lines_of(os.path.join(aug_data["a"], "pretrain"), "train") == wiki()


def test_no_question_of_dev_or_the_holdout_reaches_training(aug_data):
    folder = aug_data["a"]
    pre, fin = os.path.join(folder, "pretrain"), os.path.join(folder, "finetune")
    training = "\n".join(line for s in ("train", "qa", "aug") for line in lines_of(pre, s))
    asked = []
    for name in ("birth_dev.tsv", "holdout.tsv"):
        with open(os.path.join(fin, name), encoding="utf-8") as f:
            asked += [line.split("\t")[0] for line in f.read().splitlines()]
    assert len(asked) == 150 and not any(q in training for q in asked)
    assert "Where was" not in "\n".join(lines_of(pre, "aug"))  # rewrites of the paragraphs only


def test_the_loader_draws_rewrites_at_the_share(aug_data):
    pre = os.path.join(aug_data["a"], "pretrain")
    meta = load_meta(pre)
    tok = Tokenizer.from_meta(meta)
    rewrites = set(lines_of(pre, "aug")) - set(wiki())
    seeds = np.random.default_rng(0).integers(0, 2**63 - 1, size=400)
    plain = load_split(pre, "train", meta, 128).examples(seeds)
    off = load_split(pre, "train", meta, 128, aug_share=0.0).examples(seeds)
    assert all((a[0] == b[0]).all() for a, b in zip(plain, off))  # off draws nothing more: old runs stay as they were

    def rebuilt(x):
        """The document an example was cut from, put back together: prefix + span + suffix."""
        ids = x[x != 0]
        cut = np.flatnonzero(ids == MASK)
        prefix, suffix, span = ids[:cut[0]], ids[cut[0] + 1:cut[1]], ids[cut[1] + 1:]
        return tok.decode(np.concatenate([prefix, span, suffix]).tolist())

    def from_rewrites(share):
        examples = load_split(pre, "train", meta, 128, aug_share=share).examples(seeds)
        texts = [rebuilt(x) for x, _ in examples]
        # a prefix of a rewrite that no original paragraph starts with: certainly drawn from the rewrites
        return sum(any(r.startswith(t) for r in rewrites) and not any(p.startswith(t) for p in wiki()) for t in texts)
    assert from_rewrites(0.0) == 0 and from_rewrites(1.0) > from_rewrites(0.5) > 40
    val = load_split(pre, "val", meta, 128, aug_share=1.0).examples(seeds[:50])  # val: the paragraphs alone
    assert all(any(p.startswith(rebuilt(x)) for p in wiki()) for x, _ in val)


def test_aug_share_errors_are_sentences(bp_data, aug_data):
    plain = os.path.join(bp_data[0], "pretrain")
    with pytest.raises(ValueError, match="holds no rewritten paragraphs .* --augment"):
        load_split(plain, "train", load_meta(plain), 128, aug_share=0.5)
    pre = os.path.join(aug_data["a"], "pretrain")
    with pytest.raises(ValueError, match="aug_share=1.5 is not a share"):
        load_split(pre, "train", load_meta(pre), 128, aug_share=1.5)
    fin = os.path.join(aug_data["a"], "finetune")
    with pytest.raises(ValueError, match="is a finetuning dataset; drop them"):
        load_split(fin, "train", load_meta(fin), 128, aug_share=0.5)
    from data.birthplace.prepare import main
    with pytest.raises(SystemExit) as e:
        main([f"--input={fixture('birthplace')}", f"--out_dir={aug_data['a']}-x", "--augment=fullname,born"])
    assert "unknown rule 'born'" in str(e.value.code) and not os.path.exists(f"{aug_data['a']}-x")


def test_a_prepare_stopped_part_way_is_refused_then_redone(aug_data, tmp_path, monkeypatch):
    """A prepare --augment stopped while it writes aug.bin (Ctrl-C, a closed pipe) leaves no
    meta.json, so train.py asks for prepare again instead of pairing the old meta with new bins;
    a plain prepare after an augmented one drops aug.bin and aug_tokens together."""
    import shutil
    from data.birthplace.prepare import main
    folder = str(tmp_path / "bp")
    shutil.copytree(aug_data["a"], folder)
    stop_writing_at(monkeypatch, "aug.bin")
    with pytest.raises(KeyboardInterrupt):
        quietly(main, [f"--input={fixture('birthplace')}", f"--out_dir={folder}", "--holdout=50",
                       "--augment=fullname", "--copies=2"])
    monkeypatch.undo()
    assert not os.path.exists(os.path.join(folder, "pretrain", "meta.json"))
    message = exit_message(in_process, "train.py", f"--data_dir={folder}/pretrain", *TINY, "--aug_share=0.5",
                           "--max_iters=1", f"--out_dir={tmp_path / 'run'}")
    assert "meta.json is missing; prepare" in message
    quietly(main, [f"--input={fixture('birthplace')}", f"--out_dir={folder}", "--holdout=50"])
    pre = os.path.join(folder, "pretrain")
    assert not os.path.exists(os.path.join(pre, "aug.bin")) and "aug_tokens" not in load_meta(pre)
    assert load_meta(pre)["qa_tokens"] == os.path.getsize(os.path.join(pre, "qa.bin")) // 2


def test_train_takes_aug_share_with_mixed_training(aug_data, tmp_path):
    out = tmp_path / "run"
    in_process("train.py", f"--data_dir={aug_data['a']}/pretrain", *TINY, "--aug_share=0.5", "--qa_share=0.05",
               "--max_iters=4", "--eval_interval=4", f"--out_dir={out}")
    ck = load_checkpoint(str(out / "ckpt.pt"))
    assert ck["iter_num"] == 4 and ck["config"]["aug_share"] == 0.5 and ck["config"]["qa_share"] == 0.05
