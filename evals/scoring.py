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
    python evaluate.py --init_from=gpt2 --task=hellaswag                   # or --input=hellaswag_val.jsonl
    python evaluate.py --out_dir=out --task=lm_eval --lm_eval_tasks=arc_easy,piqa
    torchrun --standalone --nproc_per_node=8 evaluate.py --init_from=gpt2 --task=hellaswag

With --questions (a file of "question" or "question<TAB>answer" lines) the model answers each
question greedily from "question⁇"; the answer is the text up to the next "⁇" (a model
finetuned on data/birthplace/finetune has learnt to close it so). The answers go to a
predictions file, one per line; where the file has answers, the accuracy (exact match) is
printed beside the baseline of always answering --baseline ("London" in CS224N). Besides a path,
--questions takes a name from the dataset's meta.json (data/birthplace/prepare.py records
"holdout", "dev" and "test"); --task=qa without it answers dev and test.

--task=recall asks a pretrained model what it stored: each person of --questions (dev by
default) is prompted with "Name." as wiki.txt starts their paragraph, the model continues
greedily, and a hit is the gold place named, as whole words, before the paragraph's end or the
first mask ("London" does not match "New London"). With --finetuned=DIR it prints beside it
what DIR's finetuned model answers to the same people's questions, so the gap between what is
stored and what the question retrieves can be read off.
bpb, hellaswag, qa and recall show a progress bar on a terminal (rank 0), none in a log.
How each task scores, and the figures to expect: docs/evaluation.md.
"""

import contextlib
import importlib.machinery
import importlib.util
import json
import math
import os
import re
import sys
from collections import defaultdict

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from checkpoint import checkpoint_tokenizer, load_model
from configurator import configure
from data.common import DataError, Tokenizer, check_token_ids, dataset_dir, download, load_meta, open_tokens
from data.loader import estimate_loss, open_batches
from device import autocast_context, resolve_device, resolve_dtype, setup_device
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


def progress(what, total, unit):
    """A tqdm bar for a long pass, to be updated by hand: on rank 0 only, and only when stderr is a
    terminal (tqdm's disable=None), so a log or a pipe gets no bar."""
    return tqdm(total=total, desc=what, unit=unit, leave=False,
                disable=None if int(os.environ.get("RANK", 0)) == 0 else True)


# ----------------------------------------------------------------------------- qa

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


PERSON = re.compile(r"Where was (.+) born\?")


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


def show_accuracy(name, correct, total):
    print(f"{name}: {correct}/{total} correct = {100 * correct / total:.1f}%")


# ----------------------------------------------------------------------------- bpb

def all_reduce_sum(values, device, world_size):
    """A list of numbers summed over the ranks (unchanged with one process)."""
    t = torch.tensor(values, dtype=torch.float64, device=device)
    if world_size > 1:
        torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.SUM)
    return t.tolist()


@torch.no_grad()
def bits_per_byte(model, tokens, tok, batch_size, ctx, rank=0, world_size=1):
    """One full pass over a token stream (a split's memmap): consecutive windows of block_size
    predict every token but the first exactly once (the last window may be shorter). Returns
    {"loss", "perplexity"} per token and "bpb": the total nats over the UTF-8 bytes of the text the
    scored tokens decode to, over ln 2. Bytes, unlike tokens, mean the same for every tokenizer,
    so a character model and a BPE model compare. Windows are dealt out over the ranks."""
    device = next(model.parameters()).device
    T, n = model.config.block_size, len(tokens) - 1  # n: the tokens that get scored
    windows = [(s, min(T, n - s)) for s in range(0, n, T)][rank::world_size]  # (start, tokens it predicts)
    nats = torch.zeros((), dtype=torch.float64, device=device)
    with progress("bits per byte", len(windows), "windows") as bar:
        for t in sorted({t for _, t in windows}):  # two lengths at most: T and the last window's
            group = [s for s, length in windows if length == t]
            for i in range(0, len(group), batch_size):
                xy = np.stack([tokens[s:s + t + 1].astype(np.int64) for s in group[i:i + batch_size]])  # (B, t + 1)
                xy = torch.from_numpy(xy).to(device)
                with ctx:
                    logits, _ = model(xy[:, :-1])  # (B, t, V)
                nats += F.cross_entropy(logits.float().flatten(0, 1), xy[:, 1:].flatten(), reduction="sum").double()
                bar.update(len(xy))
    nats = all_reduce_sum([nats.item()], device, world_size)[0]
    n_bytes = len(tok.decode(tokens[1:].tolist()).encode("utf-8"))
    return {"loss": nats / n, "perplexity": math.exp(nats / n), "bpb": nats / n_bytes / math.log(2),
            "tokens": n, "bytes": n_bytes}


# ----------------------------------------------------------------------------- scoring continuations

@torch.no_grad()
def score_continuations(model, pairs):
    """pairs of (context ids, continuation ids) -> one (log-probability of the continuation given
    the context, whether it is the greedy continuation) per pair, in fp32. The pairs share one
    right-padded forward: padding sits after every scored position, so causal attention never
    lets it change a score. A pair longer than block_size + 1 keeps its last tokens."""
    device = next(model.parameters()).device
    block = model.config.block_size
    if any(len(x) > block for _, x in pairs):
        raise ValueError(f"a continuation is longer than block_size={block}: the model cannot score it in one window")
    rows = [(c + x)[-(block + 1):] for c, x in pairs]
    T = max(len(r) for r in rows) - 1
    inp = torch.zeros(len(rows), T, dtype=torch.long)
    for i, r in enumerate(rows):
        inp[i, :len(r) - 1] = torch.tensor(r[:-1])
    with torch.autocast(device.type, enabled=False):  # fp32 whatever the caller's autocast says
        logp = F.log_softmax(model(inp.to(device))[0].float(), dim=-1)  # (B, T, V)
    out = []
    for i, ((_, cont), r) in enumerate(zip(pairs, rows)):
        k = len(cont)
        where = torch.arange(len(r) - 1 - k, len(r) - 1, device=device)  # the positions that predict cont
        target = torch.tensor(cont, device=device)
        lp = logp[i, where]  # (k, V)
        out.append((lp.gather(1, target[:, None]).sum().item(), bool((lp.argmax(-1) == target).all())))
    return out


def rolling_pairs(ids, prefix, block):
    """A text of any length as (context, continuation) windows that together predict every token
    once, each with up to block_size tokens of context: the first window reads prefix (the
    end-of-text token) then the text; later windows predict the next block_size tokens, and the
    last one reads the whole block before its tokens. lm-evaluation-harness's rolling windows."""
    ids = list(ids)
    first = min(block, len(ids))
    pairs = [([prefix], ids[:first])]
    done = first
    while done < len(ids):
        end = min(done + block, len(ids))
        pairs.append((ids[max(0, end - block - 1):done], ids[done:end]))
        done = end
    return pairs


# ----------------------------------------------------------------------------- hellaswag

# HellaSwag's validation file at a pinned commit of its repository (the version of 2019-05-29), and
# the git blob id that the repository's tree gives it there (data.common.checksum_of)
HELLASWAG_URL = ("https://raw.githubusercontent.com/rowanz/hellaswag/"
                 "a29ff8e9a04bba4bd6588223785ce105328adc57/data/hellaswag_val.jsonl")
HELLASWAG_CHECKSUM = "git-blob:0f5ee25d72216f12317d5d8a7b92deafa423d81e"


def read_hellaswag(path):
    """HellaSwag's JSON lines as published: ind, activity_label, ctx_a, ctx_b, ctx, endings (4),
    source_id, split, split_type, label (the right ending's index). Returns the examples."""
    with open(path, encoding="utf-8-sig") as f:
        examples = [json.loads(line) for line in f if line.strip()]
    for ex in examples:
        if not {"ctx", "endings", "label"} <= ex.keys() or len(ex["endings"]) != 4:
            raise ValueError(f"{path} is not HellaSwag: each line needs ctx, 4 endings and a label "
                             f"(example ind={ex.get('ind')})")
    return examples


def hellaswag_counts(model, tok, examples, rank=0, world_size=1):
    """[correct by summed loss, correct by mean loss per ending token, examples] over this rank's
    share of the examples (every world_size-th), all-reduced over the ranks. Each example is one
    forward of 4 rows: the context followed by each ending (" " + ending, as the text reads)."""
    counts = [0, 0, 0]
    mine = examples[rank::world_size]
    with progress("hellaswag", len(mine), "examples") as bar:
        for ex in mine:
            ctx = tok.encode(ex["ctx"])
            ends = [tok.encode(" " + e) for e in ex["endings"]]
            logps = [lp for lp, _ in score_continuations(model, [(ctx, e) for e in ends])]
            label = int(ex["label"])
            counts[0] += int(np.argmax(logps)) == label  # the lowest summed loss
            counts[1] += int(np.argmax([lp / len(e) for lp, e in zip(logps, ends)])) == label  # lowest mean loss
            counts[2] += 1
            bar.update(1)
    return all_reduce_sum(counts, next(model.parameters()).device, world_size)


def hellaswag_file():
    """--input, else hellaswag_val.jsonl downloaded (once) to data/hellaswag/."""
    if input:
        return input
    dest = os.path.join(dataset_dir("hellaswag"), "hellaswag_val.jsonl")
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    return download(HELLASWAG_URL, dest, HELLASWAG_CHECKSUM)


# ----------------------------------------------------------------------------- lm_eval

def harness_lm(model, tok, batch_size=16):
    """model and tok as an lm-evaluation-harness LM (TemplateLM: the harness splits each request
    into context and continuation ids as it does for Hugging Face models, then calls
    _loglikelihood_tokens). Built on gptlab's own GPT and tokenizer, so every flag works."""
    from lm_eval.api.model import TemplateLM

    block = model.config.block_size

    class GptlabLM(TemplateLM):
        @property
        def eot_token_id(self):
            return tok.eot

        def tok_encode(self, string, add_special_tokens=None, **kwargs):
            return tok.encode(string)

        def _loglikelihood_tokens(self, requests, disable_tqdm=False, **kwargs):
            pairs = [(c, x) for _, c, x in requests]
            batches = (pairs[i:i + batch_size] for i in range(0, len(pairs), batch_size))
            return [r for batch in batches for r in score_continuations(model, batch)]

        def loglikelihood_rolling(self, requests, disable_tqdm=False):
            out = []
            for (text,) in (r.args for r in requests):
                ids = tok.encode(text)
                if tok.eot is None:  # nothing to read before the first token: it goes unscored
                    ids, prefix = ids[1:], ids[0]
                else:
                    prefix = tok.eot
                pairs = rolling_pairs(ids, prefix, block) if ids else []
                out.append(sum(lp for lp, _ in self._loglikelihood_tokens([(None, c, x) for c, x in pairs])))
            return out

        def generate_until(self, requests, disable_tqdm=False):
            return [generate_until(model, tok, context, kw) for context, kw in (r.args for r in requests)]

    return GptlabLM()


@torch.no_grad()
def generate_until(model, tok, context, gen_kwargs):
    """Greedy (or sampled, when gen_kwargs says so) text after context, with the KV cache, cut at
    the first of gen_kwargs["until"] (stop strings) or the end-of-text token."""
    until = gen_kwargs.get("until") or []
    until = [until] if isinstance(until, str) else list(until)
    max_new = gen_kwargs.get("max_gen_toks", 256)
    temperature = gen_kwargs.get("temperature", 0.0) if gen_kwargs.get("do_sample", False) else 0.0
    device = next(model.parameters()).device
    x = torch.tensor([tok.encode(context)[-model.config.block_size:]], dtype=torch.long, device=device)  # (1, T)
    ids, text = [], ""
    with torch.autocast(device.type, enabled=False):
        for nxt in model.stream(x, max_new, temperature=temperature, use_cache=True, eos_token=tok.eot):
            if tok.eot is not None and nxt.item() == tok.eot:
                break
            ids.append(nxt.item())
            text = tok.decode(ids)
            if any(s in text for s in until):
                break
    cut = min([text.find(s) for s in until if s in text], default=len(text))
    return text[:cut]


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


def main():
    name = chosen_task()
    if baseline_only:
        try:
            if dataset or data_dir:
                ddir = dataset_dir(dataset, data_dir)
                path = question_files(load_meta(ddir), ddir, questions or "dev")[0]
            elif questions:
                path = questions
            else:
                raise ValueError("--baseline_only needs --questions=FILE with answers, or --dataset=NAME "
                                 "for that dataset's dev questions")
            _, answers = read_questions(path)
        except (OSError, ValueError) as e:
            sys.exit(f"error: {e}")
        if answers is None:
            sys.exit(f"error: {path} has no answers (no TAB on its lines); give a dev file")
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
            examples = read_hellaswag(hellaswag_file())
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
