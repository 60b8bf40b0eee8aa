"""
Evaluate a checkpoint. --task chooses what is measured:

    loss       the loss and perplexity on random batches of a split of its dataset (the default)
    bpb        bits per byte of a split: one full pass over every token, comparable across tokenizers
    qa         answers to a file of questions (--questions=FILE implies it), exact-match accuracy
    recall     the knowledge probe's facts stored by pretraining: does "Name." continue with the birthplace?
    hellaswag  HellaSwag validation, completion style: acc and acc_norm
    lm_eval    any lm-evaluation-harness task (--lm_eval_tasks=...), through a small adapter

    python evaluate.py --out_dir=out-shakespeare-char-cpu                  # val loss and perplexity
    python evaluate.py --out_dir=out-birthplace-finetune --split=train     # any split of its dataset
    python evaluate.py --out_dir=out-shakespeare-char-cpu --task=bpb
    python evaluate.py --out_dir=out-shakespeare-char-cpu --quantize=int8  # what int8 weights cost (or bf16)
    python evaluate.py --init_from=gpt2 --dataset=shakespeare --task=bpb   # OpenAI's GPT-2 on a prepared dataset
    python evaluate.py --out_dir=out-birthplace-finetune --task=qa       # dev accuracy, test predictions
    python evaluate.py --out_dir=out-birthplace-finetune --questions=holdout
    python evaluate.py --out_dir=out-birthplace-pretrain --task=recall --finetuned=out-birthplace-finetune
    python evaluate.py --out_dir=out-birthplace-pretrain --ckpt=ckpt-00004000.pt --task=recall   # a kept checkpoint
    python evaluate.py --baseline_only=True --dataset=birthplace/finetune --questions=dev
    python evaluate.py --paired=A.txt,B.txt --dataset=birthplace/finetune --questions=dev   # two models' predictions
    python evaluate.py --paired=A1.txt+A2.txt,B1.txt+B2.txt --dataset=birthplace/finetune --questions=dev   # two seeds each
    python evaluate.py --paired=A/holdout.recall.txt,B/holdout.recall.txt --dataset=birthplace/finetune --questions=holdout   # stored
    python evaluate.py --init_from=gpt2 --task=hellaswag                   # or --input=hellaswag_val.jsonl
    python evaluate.py --out_dir=out --task=lm_eval --lm_eval_tasks=arc_easy,piqa
    torchrun --standalone --nproc_per_node=8 evaluate.py --init_from=gpt2 --task=hellaswag

With --questions (a file of "question" or "question<TAB>answer" lines) the model answers each
question greedily from "question⁇"; the answer is the text up to the next "⁇" (a model
finetuned on data/birthplace/finetune has learnt to close it so). The answers go to a
predictions file, one per line; where the file has answers, the accuracy (exact match) is
printed beside the baseline of always answering --baseline ("London" in CS224N). Besides a path,
--questions takes a name from the dataset's meta.json (data/birthplace/prepare.py records
"holdout", "dev" and "test"); --task=qa without it answers dev and test. --paired=A,B compares
two predictions files of the same questions, without a model: each accuracy, and McNemar's exact
test on the questions that one answers right and the other wrong; two recall files (--task=recall)
compare what two pretrained models stored in the same way. An arm may be several files
joined by "+" (one per seed, say): each question then scores the number of its files that answer
it right, and the sign test counts the questions where A scores more against those where B does
(with one file a side, that is McNemar's test).

--task=recall asks a pretrained model what it stored: each person of --questions (dev by
default) is prompted with "Name." as wiki.txt starts their paragraph, the model continues
greedily, and a hit is the gold place named, as whole words, before the paragraph's end or the
first mask ("London" does not match "New London"). With --finetuned=DIR it prints beside it
what DIR's finetuned model answers to the same people's questions, so the gap between what is
stored and what the question retrieves can be read off.
bpb, hellaswag, qa and recall show a progress bar on a terminal (rank 0), none in a log.
How each task scores, and the figures to expect: docs/evaluation.md. The tasks' code is in evals/,
a module each; this file is the stage: settings, the model loaded once, the task chosen, printing.
"""

import contextlib
import importlib.machinery
import importlib.util
import math
import os
import sys

import torch

from checkpoint import checkpoint_tokenizer, load_model
from configurator import configure
from data.birthplace.batches import PERSON
from data.common import DataError, check_token_ids, dataset_dir, load_meta, open_tokens
from data.loader import estimate_loss, open_batches
from data.tokenizer import Tokenizer
from device import autocast_context, resolve_device, resolve_dtype, setup_device
from evals.bpb import bits_per_byte
from evals.harness import harness_lm
from evals.hellaswag import hellaswag_counts, hellaswag_file, read_hellaswag
from evals.probe import (accuracy, answer, mcnemar, names_place, question_files, read_correct, read_questions, recall,
                         show_accuracy)
from quantize import quantize_error, quantize_model

# ----------------------------------------------------------------------------- config
task = ""  # 'loss', 'bpb', 'qa', 'recall', 'hellaswag' or 'lm_eval' ('': qa with --questions, else loss)
init_from = "resume"  # 'resume' (out_dir/ckpt.pt), 'gpt2', 'gpt2-medium', 'gpt2-large', 'gpt2-xl', or 'hf:PATH'
out_dir = "out"  # the folder with ckpt.pt
ckpt = "ckpt.pt"  # which checkpoint of out_dir: a kept ckpt-<iter>.pt (train.py's --keep_last) measures a point on the way
dataset = ""  # for loss and bpb: a prepared folder under data/ ('': the checkpoint's own)
data_dir = ""  # where the dataset is, if not where the checkpoint was trained on
split = "val"  # loss and bpb: the split of the dataset to measure
eval_iters = 100  # loss: batches
batch_size = 64  # loss and bpb: sequences per forward (hellaswag: one example, its 4 endings, per forward)
questions = ""  # qa, recall: a file of "question" or "question<TAB>answer" lines, or a name in meta.json ('dev', 'holdout', 'test')
predictions = ""  # qa: where the answers go, one per line ('': beside the checkpoint, named after --questions)
finetuned = ""  # recall: a finetuned run's folder, whose answers to the same people are shown beside what is stored
max_answer_tokens = 32  # qa: stop an answer after this many tokens (the longest course answer has 15)
baseline = "London"  # qa: the constant answer the accuracy is compared with
baseline_only = False  # qa: only the baseline's accuracy, no checkpoint needed
paired = ""  # qa: "A,B", two predictions (or recall) files of --questions (or "A1+A2,B1+B2": seeds): accuracies and McNemar's test, no checkpoint
input = ""  # hellaswag: a local copy of hellaswag_val.jsonl instead of downloading it
limit = 0  # hellaswag and lm_eval: only the first this many examples (0: all)
lm_eval_tasks = ""  # lm_eval: comma-separated task names
lm_eval_include = ""  # lm_eval: a folder of your own task YAML files
num_fewshot = -1  # lm_eval: examples in each prompt (-1: the task's default)
seed = 1337  # which batches the loss is measured on
device = "auto"  # 'auto' (cuda, then mps, then cpu), 'cpu', 'cuda', 'cuda:1', 'mps'
dtype = "auto"  # of the loss and bpb; answers, hellaswag and lm_eval are always computed in fp32
quantize = "none"  # any task: weights 'none' (fp32), 'bf16' or 'int8' (quantize.py), to measure what each costs
# ------------------------------------------------------------------------------

TASKS = ("loss", "bpb", "qa", "recall", "hellaswag", "lm_eval")


# ----------------------------------------------------------------------------- lm_eval

def run_lm_eval(model, tok):
    """lm_eval.simple_evaluate on --lm_eval_tasks; prints the harness's table, returns its results."""
    try:
        import lm_eval
        from lm_eval.tasks import TaskManager
        from lm_eval.utils import make_table
    except ImportError:
        sys.exit("error: --task=lm_eval needs lm-evaluation-harness: pip install lm-eval")
    if not lm_eval_tasks:
        sys.exit("error: --task=lm_eval needs --lm_eval_tasks=NAME[,NAME...] (lm-eval ls tasks lists them)")
    with hf_evaluate_as_evaluate():
        manager = TaskManager(include_path=lm_eval_include or None)
        results = lm_eval.simple_evaluate(model=harness_lm(model, tok), tasks=lm_eval_tasks.split(","),
                                          task_manager=manager, limit=limit or None,
                                          num_fewshot=None if num_fewshot < 0 else num_fewshot)
    print(make_table(results))
    return results


@contextlib.contextmanager
def hf_evaluate_as_evaluate():
    """While the harness runs, `import evaluate` gives Hugging Face's evaluate package (which
    lm-eval installs, and which some tasks' metrics import), not this file: run from the
    repository, the script's own folder comes first on sys.path and its name would win."""
    here = os.path.dirname(os.path.abspath(__file__))
    ours = sys.modules.get("evaluate")  # this file, where something imported it as a module
    path = [p for p in sys.path if os.path.abspath(p or os.curdir) != here]
    spec = importlib.machinery.PathFinder.find_spec("evaluate", path)
    if spec is None or (ours is not None and os.path.dirname(os.path.abspath(ours.__file__)) != here):
        yield  # not installed (the tasks that need it fail as anywhere), or already Hugging Face's
        return
    hf = importlib.util.module_from_spec(spec)
    sys.modules["evaluate"] = hf
    try:
        spec.loader.exec_module(hf)
        yield
    finally:
        if ours is None:
            sys.modules.pop("evaluate", None)
        else:
            sys.modules["evaluate"] = ours


# ----------------------------------------------------------------------------- main

def ranks():
    """(rank, world_size, device) of this process: under torchrun each rank joins the group
    and takes its own GPU; alone, (0, 1, device)."""
    dev = resolve_device(device)
    if int(os.environ.get("RANK", -1)) == -1:
        return 0, 1, dev
    import atexit
    import torch.distributed as dist
    if dev.startswith("cuda"):
        dev = f"cuda:{os.environ['LOCAL_RANK']}"
        torch.cuda.set_device(dev)
    dist.init_process_group(backend="nccl" if dev.startswith("cuda") else "gloo")
    atexit.register(lambda: dist.is_initialized() and dist.destroy_process_group())
    return dist.get_rank(), dist.get_world_size(), dev


def chosen_task():
    """--task, or what today's command lines meant: --questions is the qa task."""
    name = task or ("qa" if questions else "loss")
    if name not in TASKS:
        sys.exit(f"error: unknown --task={name!r}; use one of {', '.join(TASKS)}")
    if questions and name not in ("qa", "recall"):
        sys.exit(f"error: --questions belongs to --task=qa or recall, not --task={name}; drop one of them")
    return name


def written_beside(questions_file, kind):
    """Where an answers or recall file goes: out_dir/<questions>.<kind>.txt, or for a kept
    checkpoint out_dir/<questions>.ckpt-<iter>.<kind>.txt, so that each point keeps its own."""
    stem = os.path.splitext(os.path.basename(questions_file))[0]
    if ckpt != "ckpt.pt":
        stem += "." + os.path.splitext(os.path.basename(ckpt))[0]
    return os.path.join(out_dir, f"{stem}.{kind}.txt")


def qa(model, meta, ddir, device_):
    """The qa task: answer --questions, write the predictions, print the accuracy where there are answers."""
    if "mask" not in meta:
        sys.exit(f"error: {ddir}/meta.json names no mask symbol; --questions needs a model trained on "
                 f"data/birthplace (python data/birthplace/prepare.py)")
    try:
        files = question_files(meta, ddir, questions)
        if predictions and len(files) > 1:
            raise ValueError("--predictions names one file; give one --questions with it")
        for path in files:
            qs, answers = read_questions(path)
            predicted = answer(model, Tokenizer.from_meta(meta, ddir), meta["mask"], qs, device_, max_answer_tokens)
            out = predictions or written_beside(path, "predictions")
            with open(out, "w", encoding="utf-8") as f:
                f.writelines(p.replace("\n", " ") + "\n" for p in predicted)  # one line each, whatever was generated
            print(f"{path}: wrote {len(predicted)} predictions to {out}")
            if answers is not None:
                show_accuracy("model", *accuracy(predicted, answers))
                show_accuracy(f"baseline ('{baseline}' every time)", *accuracy([baseline] * len(answers), answers))
    except (OSError, ValueError) as e:
        sys.exit(f"error: {e}")


def recall_task(model, meta, ddir, device_):
    """The recall task: what pretraining stored about each person of --questions, and with
    --finetuned, what the finetuned model answers to the same people."""
    if "mask" not in meta:
        sys.exit(f"error: {ddir}/meta.json names no mask symbol; --task=recall needs a model trained on "
                 f"data/birthplace (python data/birthplace/prepare.py)")
    try:
        path = question_files(meta, ddir, questions or "dev")[0]
        qs, answers = read_questions(path)
        if answers is None:
            raise ValueError(f"{path} has no answers (no TAB on its lines); give a file with answers")
        people = []
        for q in qs:
            m = PERSON.fullmatch(q)
            if not m:
                raise ValueError(f"{path}: {q!r} is not 'Where was NAME born?'")
            people.append(m.group(1))
        tok = Tokenizer.from_meta(meta, ddir)
        texts = recall(model, tok, meta["mask"], people, device_)
        stored = [names_place(t, a) for t, a in zip(texts, answers)]
        out = written_beside(path, "recall")
        with open(out, "w", encoding="utf-8") as f:
            f.writelines(f"{p}.{t}\t{a}\t{int(h)}\n" for p, t, a, h in zip(people, texts, answers, stored))
        print(f"{path}: wrote {len(texts)} continuations to {out}")
        show_accuracy('stored (greedy "Name." names the birthplace)', sum(stored), len(stored))
        if finetuned:
            fmodel, ftok, _ = load_model("resume", finetuned, "")
            fmodel = quantize_model(fmodel.to(device_).eval(), quantize)  # as the pretrained model
            said = answer(fmodel, ftok, meta["mask"], qs, device_, max_answer_tokens)
            right = [p == a for p, a in zip(said, answers)]
            show_accuracy(f"answered ({finetuned}, exact match)", sum(right), len(right))
            both = sum(s and r for s, r in zip(stored, right))
            print(f"stored and answered {both}, stored only {sum(stored) - both}, answered only {sum(right) - both}, "
                  f"neither {len(right) - sum(stored) - sum(right) + both}")
    except (OSError, RuntimeError, ValueError) as e:
        sys.exit(f"error: {e}")


def gold_answers(what):
    """The answers of --questions (a file, or a name in --dataset's meta.json; dev by default),
    for the modes that need no checkpoint. Exits with one line when there are none."""
    try:
        if dataset or data_dir:
            ddir = dataset_dir(dataset, data_dir)
            path = question_files(load_meta(ddir), ddir, questions or "dev")[0]
        elif questions:
            path = questions
        else:
            raise ValueError(f"{what} needs --questions=FILE with answers, or --dataset=NAME for that dataset's "
                             f"dev questions")
        _, answers = read_questions(path)
    except (OSError, ValueError) as e:
        sys.exit(f"error: {e}")
    if answers is None:
        sys.exit(f"error: {path} has no answers (no TAB on its lines); give a dev file")
    return path, answers


def compare_predictions():
    """--paired=A,B: two models' predictions of the same questions, each accuracy with its standard
    error, and McNemar's exact test on the questions only one of them answers. An arm of several
    files (A1+A2): per question, how many of its files answer right; the same exact test then
    counts the questions where one arm's count is higher (the sign test)."""
    arms = [arm.split("+") for arm in paired.split(",")]
    if len(arms) != 2 or not all(all(arm) for arm in arms):
        sys.exit(f"error: --paired={paired} needs two arms of predictions files, A,B (or A1+A2,B1+B2 for seeds)")
    if len(arms[0]) != len(arms[1]):
        sys.exit(f"error: --paired={paired} gives {len(arms[0])} and {len(arms[1])} files; give each arm as many "
                 f"(one per seed), so the per-question counts compare")
    path, answers = gold_answers("--paired")
    n = len(answers)
    scores = []  # per arm: [n] how many of its files answer each question right
    for arm in arms:
        try:
            right = [read_correct(f, answers) for f in arm]
        except (OSError, ValueError) as e:
            sys.exit(f"error: {e}")
        for f, r in zip(arm, right):
            p = sum(r) / n
            print(f"{f}: {sum(r)}/{n} correct = {100 * p:.1f}% (standard error {100 * math.sqrt(p * (1 - p) / n):.1f})")
        if len(arm) > 1:
            print(f"  mean of {len(arm)}: {100 * sum(map(sum, right)) / (n * len(arm)):.1f}%")
        scores.append([sum(col) for col in zip(*right)])
    more_a = sum(a > b for a, b in zip(*scores))
    more_b = sum(b > a for a, b in zip(*scores))
    if all(len(arm) == 1 for arm in arms):
        both = sum(a and b for a, b in zip(*scores))
        print(f"on {path}: both {both}, only A {more_a}, only B {more_b}; McNemar's exact test p = {mcnemar(more_a, more_b):.4g}")
    else:
        print(f"on {path}, per question over {'+'.join(str(len(arm)) for arm in arms)} files: A right more often "
              f"{more_a}, B {more_b}, as often {n - more_a - more_b}; sign test p = {mcnemar(more_a, more_b):.4g}")


def main():
    name = chosen_task()
    if paired:
        compare_predictions()
        return
    if baseline_only:
        _, answers = gold_answers("--baseline_only")
        show_accuracy(f"baseline ('{baseline}' every time)", *accuracy([baseline] * len(answers), answers))
        return
    rank, world_size, device_ = ranks()
    setup_device(device_)
    if error := quantize_error(quantize, device_):
        sys.exit(f"error: {error}")
    ctx = autocast_context(device_, resolve_dtype(dtype, device_))
    if ckpt != "ckpt.pt":
        if init_from != "resume":
            sys.exit(f"error: --ckpt picks a checkpoint of --out_dir; it means nothing with --init_from={init_from}")
        if not os.path.isfile(os.path.join(out_dir, ckpt)):
            kept = sorted(f for f in os.listdir(out_dir) if f.startswith("ckpt")) if os.path.isdir(out_dir) else []
            sys.exit(f"error: no {ckpt} in {out_dir}; it holds {', '.join(kept) or 'no checkpoints'}")
    try:
        model, tok, run = load_model(init_from, out_dir, data_dir, ckpt)
        if run:
            print(f"checkpoint: {out_dir}/{ckpt} (iter {run['iter_num']})")
        cfg = run.get("config", {})
        if name in ("loss", "bpb", "qa", "recall"):
            if not run and not (dataset or data_dir):
                raise ValueError(f"--init_from={init_from} has no dataset of its own; name one with "
                                 f"--dataset=NAME or --data_dir=PATH")
            if dataset:  # --dataset names a folder under data/, whatever the checkpoint trained on
                ddir = dataset_dir(dataset, data_dir)
            else:
                ddir = dataset_dir(cfg.get("dataset", ""), data_dir or cfg.get("data_dir", ""))
            meta = load_meta(ddir)
            if run:  # the dataset must speak the checkpoint's tokenizer
                checkpoint_tokenizer(run.get("tokenizer"), model.config.vocab_size, f"{out_dir}/{ckpt}", ddir, meta)
            print(f"dataset {ddir}")
    except (OSError, RuntimeError, ValueError) as e:
        sys.exit(f"error: {e}")
    model = quantize_model(model.to(device_).eval(), quantize)
    master = rank == 0

    if name == "loss":
        try:
            batches = open_batches(ddir, split, meta, model.config.block_size, device_)
            loss = estimate_loss(model, {split: batches}, eval_iters, batch_size, ctx, seed, rank, world_size)[split]
        except (FileNotFoundError, ValueError) as e:  # DataError: a batch's ids outside the vocabulary
            sys.exit(f"error: {e}")
        if master:
            print(f"{split} loss {loss:.4f}, perplexity {math.exp(loss):.2f} ({eval_iters} batches of {batch_size})")
    elif name == "bpb":
        if "batch_module" in meta:
            sys.exit(f"error: {ddir} is a dataset of examples, not a text stream; bpb needs a text corpus")
        if meta["vocab_size"] > model.config.vocab_size:
            sys.exit(f"error: {ddir} has {meta['vocab_size']} token ids but the model knows {model.config.vocab_size}; "
                     f"prepare it with the model's tokenizer")
        data_tok = Tokenizer.from_meta(meta, ddir)  # the bytes are those of the dataset's own ids
        try:
            tokens = open_tokens(ddir, split, meta)
            check_token_ids(tokens, meta["vocab_size"], tokens.filename)  # one pass reads it all anyway
        except DataError as e:
            sys.exit(f"error: {e}")
        r = bits_per_byte(model, tokens, data_tok, batch_size, ctx, rank, world_size)
        if master:
            print(f"{split} loss {r['loss']:.4f}, perplexity {r['perplexity']:.2f} per token; "
                  f"{r['bpb']:.4f} bits per byte ({r['tokens']:,} tokens, {r['bytes']:,} bytes, one full pass)")
    elif name == "qa":
        qa(model, meta, ddir, device_)
    elif name == "recall":
        recall_task(model, meta, ddir, device_)
    elif name == "hellaswag":
        if tok.kind == "char":
            sys.exit("error: hellaswag needs a tokenizer that encodes any English text; this model is "
                     "character-level (use a GPT-2 BPE checkpoint or --init_from=gpt2)")
        try:
            examples = read_hellaswag(hellaswag_file(input))
            correct, correct_norm, n = hellaswag_counts(model, tok, examples[:limit or None], rank, world_size)
        except (ConnectionError, OSError, ValueError) as e:
            sys.exit(f"error: {e}")
        if master:
            print(f"hellaswag: acc {correct / n:.4f}, acc_norm {correct_norm / n:.4f} ({int(n):,} examples)")
    elif name == "lm_eval":
        if world_size > 1:
            sys.exit("error: --task=lm_eval runs in one process; run it without torchrun")
        run_lm_eval(model, tok)


if __name__ == "__main__":
    configure(globals())
    main()
