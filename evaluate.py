"""
Evaluate a checkpoint: the loss and perplexity on its dataset, or answers to questions.

    python evaluate.py --out_dir=out-shakespeare-char-cpu                  # val loss and perplexity
    python evaluate.py --out_dir=out-birthplace-finetune --split=train     # any split of its dataset
    python evaluate.py --out_dir=out-birthplace-finetune --questions=data/birthplace/birth_dev.tsv
    python evaluate.py --out_dir=out-birthplace-finetune --questions=data/birthplace/birth_test_inputs.tsv
    python evaluate.py --baseline_only=True --questions=data/birthplace/birth_dev.tsv

With --questions (a file of "question" or "question<TAB>answer" lines) the model answers each
question greedily from "question⁇"; the answer is the text up to the next "⁇" (a model
finetuned on data/birthplace/finetune has learnt to close it so). The answers go to a
predictions file, one per line; where the file has answers, the accuracy (exact match) is
printed beside the baseline of always answering --baseline ("London" in CS224N).
"""

import os
import sys
from collections import defaultdict

import torch

from checkpoint import load_checkpoint, model_from_checkpoint
from configurator import configure
from data.common import Tokenizer, dataset_dir, load_meta
from data.loader import estimate_loss, open_batches
from device import autocast_context, resolve_device, resolve_dtype, setup_device

# ----------------------------------------------------------------------------- config
out_dir = "out"  # the folder with ckpt.pt
split = "val"  # without --questions: the split of the checkpoint's dataset to report loss and perplexity on
eval_iters = 100  # batches for the loss
batch_size = 64
questions = ""  # a file of "question" or "question<TAB>answer" lines to answer
predictions = ""  # where the answers go, one per line ('': beside the checkpoint, named after --questions)
max_answer_tokens = 32  # stop an answer after this many tokens (the longest course answer has 15)
baseline = "London"  # the constant answer the accuracy is compared with
baseline_only = False  # with --questions: only the baseline's accuracy, no checkpoint needed
seed = 1337  # which batches the loss is measured on
device = "auto"
dtype = "auto"  # of the loss; answers to --questions are always decoded in fp32
data_dir = ""  # where the dataset is, if not where the checkpoint was trained on
# ------------------------------------------------------------------------------


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
def answer(model, tok, mask, questions, device, max_new_tokens=32):
    """Greedy answers: questions of the same length share one batch (no padding needed). Decoded
    in fp32 whatever --dtype says: the argmax of bf16 logits flips on near-ties, and the answers
    must not depend on the device they were computed on."""
    block = model.config.block_size
    prompts = [tok.encode(q) + [mask] for q in questions]
    by_length = defaultdict(list)
    for i, p in enumerate(prompts):
        by_length[len(p)].append(i)
    out = [""] * len(questions)
    for n, rows in by_length.items():
        if n >= block:
            raise ValueError(f"a question of {n - 1} tokens leaves no room to answer in block_size={block}")
        x = torch.tensor([prompts[i] for i in rows], dtype=torch.long, device=device)  # (B, n)
        with torch.autocast(device.split(":")[0], enabled=False):  # fp32, even inside a caller's autocast
            y = model.generate(x, min(block - n, max_new_tokens), temperature=0.0, eos_token=mask)  # (B, n + new)
        for i, row in zip(rows, y[:, n:].tolist()):
            out[i] = parse_answer(tok.decode(row), tok.decode([mask]))
    return out


def show_accuracy(name, correct, total):
    print(f"{name}: {correct}/{total} correct = {100 * correct / total:.1f}%")


def main():
    if baseline_only:
        if not questions:
            sys.exit("error: --baseline_only needs --questions=FILE with answers")
        _, answers = read_questions(questions)
        if answers is None:
            sys.exit(f"error: {questions} has no answers (no TAB on its lines); give a dev file")
        show_accuracy(f"baseline ('{baseline}' every time)", *accuracy([baseline] * len(answers), answers))
        return
    device_ = resolve_device(device)
    setup_device(device_)
    ctx = autocast_context(device_, resolve_dtype(dtype, device_))
    try:
        ckpt = load_checkpoint(os.path.join(out_dir, "ckpt.pt"))  # in host memory: only the weights go to device_
        cfg = ckpt.get("config", {})
        ddir = dataset_dir(cfg.get("dataset", ""), data_dir or cfg.get("data_dir", ""))
        meta = load_meta(ddir)
    except (FileNotFoundError, RuntimeError) as e:
        sys.exit(f"error: {e}")
    model = model_from_checkpoint(ckpt).to(device_).eval()
    print(f"checkpoint: {out_dir}/ckpt.pt (iter {ckpt.get('iter_num')}); dataset {ddir}")

    if not questions:
        try:
            batches = open_batches(ddir, split, meta, model.config.block_size, device_)
        except (FileNotFoundError, ValueError) as e:
            sys.exit(f"error: {e}")
        loss = estimate_loss(model, {split: batches}, eval_iters, batch_size, ctx, seed)[split]
        print(f"{split} loss {loss:.4f}, perplexity {torch.tensor(loss).exp().item():.2f} "
              f"({eval_iters} batches of {batch_size})")
        return

    if "mask" not in meta:
        sys.exit(f"error: {ddir}/meta.json names no mask symbol; --questions needs a model trained on "
                 f"data/birthplace (python data/birthplace/prepare.py)")
    try:
        qs, answers = read_questions(questions)
        predicted = answer(model, Tokenizer.from_meta(meta, ddir), meta["mask"], qs, device_, max_answer_tokens)
    except (OSError, ValueError) as e:
        sys.exit(f"error: {e}")
    path = predictions or os.path.join(out_dir, os.path.splitext(os.path.basename(questions))[0] + ".predictions.txt")
    with open(path, "w", encoding="utf-8") as f:
        f.writelines(p.replace("\n", " ") + "\n" for p in predicted)  # one line each, whatever was generated
    print(f"wrote {len(predicted)} predictions to {path}")
    if answers is not None:
        show_accuracy("model", *accuracy(predicted, answers))
        show_accuracy(f"baseline ('{baseline}' every time)", *accuracy([baseline] * len(answers), answers))


if __name__ == "__main__":
    configure(globals())
    main()
