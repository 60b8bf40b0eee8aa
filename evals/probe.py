"""
The knowledge probe (Stanford CS224N's birthplace task): does a model store facts while
pretraining, and does a question retrieve them after finetuning?

qa      each question is answered greedily from "question⁇"; the answer is the text up to the
        next "⁇" (parse_answer), scored by exact match with the gold answer (accuracy), beside
        the baseline of answering one place every time ("London")
recall  each person is prompted with "Name." as wiki.txt starts their paragraph; a hit is the
        gold place named as whole words, not inside a longer name (names_place), before the
        paragraph's end or the first mask

Decoding is greedy and in fp32 (greedy), so an answer does not depend on the device. Questions
come from a file of "question" or "question<TAB>answer" lines (read_questions), named by its path
or by the dataset's meta.json (question_files). Figures: docs/birthplace.md.
"""

import math
import os
import re
from collections import defaultdict

import torch

from evals.ranks import progress


def read_questions(path):
    """A file of "question" or "question<TAB>answer" lines -> (questions, answers or None)."""
    with open(path, encoding="utf-8") as f:
        rows = [line.rstrip("\n").split("\t") for line in f if line.strip()]
    if any(len(r) > 2 for r in rows) or len({len(r) for r in rows}) > 1:
        raise ValueError(f"{path}: every line must be 'question' or every line 'question<TAB>answer'")
    questions = [r[0] for r in rows]
    return questions, ([r[1] for r in rows] if rows and len(rows[0]) == 2 else None)


def parse_answer(completion, mask):
    """The text the model wrote after the question's mask, up to the next mask (or the end)."""
    return completion.split(mask)[0]


def accuracy(predicted, answers):
    """(correct, total) by exact match."""
    if len(predicted) != len(answers):
        raise ValueError(f"{len(predicted)} predictions for {len(answers)} answers")
    return sum(p == a for p, a in zip(predicted, answers)), len(answers)


@torch.no_grad()
def greedy(model, prompts, device, max_new_tokens, eos_token=None, what="a prompt"):
    """Greedy continuations of token-id prompts: prompts of the same length share one batch (no
    padding needed). Decoded in fp32 whatever --dtype says: the argmax of bf16 logits flips on
    near-ties, and the results must not depend on the device they were computed on. Returns
    each prompt's new ids."""
    block = model.config.block_size
    by_length = defaultdict(list)
    for i, p in enumerate(prompts):
        by_length[len(p)].append(i)
    out = [[] for _ in prompts]
    with progress("greedy decoding", len(prompts), "prompts") as bar:
        for n, rows in by_length.items():
            if n >= block:
                raise ValueError(f"{what} of {n} tokens leaves no room to continue in block_size={block}")
            x = torch.tensor([prompts[i] for i in rows], dtype=torch.long, device=device)  # (B, n)
            with torch.autocast(device.split(":")[0], enabled=False):  # fp32, even inside a caller's autocast
                y = model.generate(x, min(block - n, max_new_tokens), temperature=0.0,
                                   eos_token=eos_token)  # (B, n + new)
            for i, row in zip(rows, y[:, n:].tolist()):
                out[i] = row
            bar.update(len(rows))
    return out


def answer(model, tok, mask, questions, device, max_new_tokens=32):
    """Greedy answers to questions, each from "question⁇" up to the next mask."""
    rows = greedy(model, [tok.encode(q) + [mask] for q in questions], device, max_new_tokens, mask, "a question")
    return [parse_answer(tok.decode(r), tok.decode([mask])) for r in rows]


def question_files(meta, ddir, name):
    """--questions: a path, or a name the dataset's meta.json gives a file for; '' is the dataset's
    dev file and test inputs (the knowledge probe's two). Returns a list of paths. Raises ValueError."""
    named = meta.get("questions", {})
    wanted = [name] if name else [n for n in ("dev", "test") if n in named]
    if not wanted:
        raise ValueError(f"{ddir}/meta.json names no question files; give --questions=FILE")
    paths = []
    for n in wanted:
        if n in named:
            paths.append(os.path.normpath(os.path.join(ddir, named[n])))
        elif os.path.isfile(n) or os.sep in n or "." in n:
            paths.append(n)  # a path (a missing one fails when read, with its name)
        else:
            raise ValueError(f"--questions={n} is neither a file nor one of {ddir}/meta.json's "
                             f"{', '.join(named) or 'question files (it has none)'}")
    return paths


def names_place(text, place):
    """Whether place appears in text as whole words and not inside a longer name: "London" is
    named by "born in London ." and "born in London , England", but not by "New London",
    "Londonderry" or "London Bridge" (another capitalised word joined by one space)."""
    for m in re.finditer(re.escape(place), text):
        before, after = text[:m.start()], text[m.end():]
        if re.search(r"\w$", before) or re.match(r"\w", after):
            continue  # part of a longer word
        if re.search(r"[A-Z]\w*\s$", before) or re.match(r"\s[A-Z]", after):
            continue  # part of a longer capitalised name
        return True
    return False


def recall(model, tok, mask, people, device, max_new_tokens=None):
    """Greedy continuations of "Name." (how wiki.txt starts a person's paragraph), cut at the
    paragraph's end or the first mask: what a span-corruption model writes about each person."""
    rows = greedy(model, [tok.encode(p + ".") for p in people], device,
                  max_new_tokens or model.config.block_size, what="a name")
    stop = f"[{re.escape(tok.decode([mask]))}\n]"
    return [re.split(stop, tok.decode(r))[0].split("□")[0] for r in rows]


def read_predictions(path, n):
    """A predictions file as qa writes it (one answer per line) -> its n answers. Raises ValueError."""
    with open(path, encoding="utf-8") as f:
        said = f.read().split("\n")
    said = said[:-1] if said and said[-1] == "" else said
    if len(said) != n:
        raise ValueError(f"{path} has {len(said)} lines for {n} questions; give predictions of the same questions")
    return said


def read_correct(path, answers):
    """Per question, right or not: a predictions file (one answer a line, as qa writes it) by exact
    match against answers, or a recall file (--task=recall's "Name.continuation<TAB>birthplace<TAB>1
    or 0" lines) by its own mark, once its birthplaces are checked against answers. Raises ValueError."""
    said = read_predictions(path, len(answers))
    rows = [line.split("\t") for line in said]
    if not all(len(r) == 3 and r[2] in ("0", "1") for r in rows):
        return [s == a for s, a in zip(said, answers)]
    other = [i for i, (r, a) in enumerate(zip(rows, answers)) if r[1] != a]
    if other:
        raise ValueError(f"{path} line {other[0] + 1} is about {rows[other[0]][1]!r}, not {answers[other[0]]!r}; "
                         f"give a recall file of the same questions")
    return [r[2] == "1" for r in rows]


def mcnemar(only_a, only_b):
    """McNemar's exact test of two models on the same questions: only_a questions answered by the
    first alone, only_b by the second alone. Under "equally good" each of those n = only_a + only_b
    questions is a fair coin; the two-sided p-value doubles the smaller tail of Binomial(n, 1/2).
    The same test is the sign test: only_a items where A does better, only_b where B does."""
    n = only_a + only_b
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, k) for k in range(min(only_a, only_b) + 1)) / 2 ** n
    return min(1.0, 2 * tail)


def show_accuracy(name, correct, total):
    print(f"{name}: {correct}/{total} correct = {100 * correct / total:.1f}%")
