"""evaluate.py's tasks in-process: bits per byte over one full pass, continuation scoring,
HellaSwag's acc and acc_norm, and the lm-evaluation-harness adapter against gptlab's own loss.
Expected values are computed here by hand from the model's logits."""

import contextlib
import io
import json
import math
import os
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import evaluate  # noqa: E402
from conftest import exit_message, in_process  # noqa: E402
from data import common  # noqa: E402
from data.tokenizer import Tokenizer  # noqa: E402
from evals import bpb, harness, hellaswag, probe, scoring  # noqa: E402
from model import GPT, GPTConfig  # noqa: E402

CHARS = "\n !',.:;?abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
TEXT = "First Citizen:\nBefore we proceed any further, hear me speak.\nAll:\nSpeak, speak.\n"


def tiny(vocab_size, block_size=16, seed=0):
    torch.manual_seed(seed)
    return GPT(GPTConfig(n_layer=1, n_head=2, n_embd=32, block_size=block_size, vocab_size=vocab_size)).eval()


def sum_nats_by_hand(model, ids):
    """Every token of ids but the first, scored from the start of its block_size-long window."""
    T, total = model.config.block_size, 0.0
    for s in range(0, len(ids) - 1, T):
        x = torch.tensor([ids[s:s + T + 1]])
        _, loss = model(x[:, :-1], x[:, 1:])  # the model's own mean cross-entropy
        total += loss.item() * (x.size(1) - 1)
    return total


def test_bpb_of_a_char_model_on_ascii_is_loss_over_ln2():
    tok = Tokenizer({"kind": "char", "chars": CHARS})
    ids = np.array(tok.encode(TEXT * 2), dtype=np.uint16)  # 154 tokens: 9 full windows of 16 and a short one
    model = tiny(len(CHARS))
    r = bpb.bits_per_byte(model, ids, tok, batch_size=4, ctx=contextlib.nullcontext())
    assert r["tokens"] == r["bytes"] == len(ids) - 1  # ASCII: one byte per character
    assert r["bpb"] == r["loss"] / math.log(2)
    assert r["loss"] == pytest.approx(sum_nats_by_hand(model, ids.tolist()) / (len(ids) - 1), rel=1e-6)
    assert r["perplexity"] == pytest.approx(math.exp(r["loss"]))


def test_bpb_of_a_bpe_model_by_hand():
    tok = Tokenizer({"kind": "tiktoken", "name": "gpt2"})
    text = "Señor Don Quixote — ¿qué? " * 3  # non-ASCII: bytes are not characters
    ids = tok.encode(text)
    model = tiny(tok.vocab_size, block_size=8)
    r = bpb.bits_per_byte(model, np.array(ids, dtype=np.uint16), tok, 3, contextlib.nullcontext())
    n_bytes = len(tok.enc.decode_bytes(ids[1:]))
    assert r["bytes"] == n_bytes and n_bytes > len(tok.decode(ids[1:]))
    assert r["bpb"] == pytest.approx(sum_nats_by_hand(model, ids) / n_bytes / math.log(2), rel=1e-6)


def test_score_continuations_is_the_log_softmax_of_the_ending():
    model = tiny(len(CHARS))
    pairs = [([3, 4, 5], [6, 7]), ([8], [9, 10, 11, 12]), ([1] * 20, [2, 3])]  # the last is cut to block_size + 1
    got = scoring.score_continuations(model, pairs)
    for (c, x), (lp, greedy) in zip(pairs, got):
        row = (c + x)[-17:]
        logp = F.log_softmax(model(torch.tensor([row[:-1]]))[0][0], -1)  # (T, V)
        want = sum(logp[len(row) - 1 - len(x) + j, t].item() for j, t in enumerate(x))
        assert lp == pytest.approx(want, abs=1e-5)
        assert greedy == all(logp[len(row) - 1 - len(x) + j].argmax().item() == t for j, t in enumerate(x))


def test_rolling_pairs_predict_every_token_once_with_full_context():
    ids = list(range(100, 137))  # 37 tokens, block 16: windows predict 16, 16, 5
    pairs = scoring.rolling_pairs(ids, 0, 16)
    assert [len(x) for _, x in pairs] == [16, 16, 5]
    assert sum((x for _, x in pairs), []) == ids
    assert pairs[0][0] == [0] and all(len(c) + len(x) == 17 for c, x in pairs)


class Terminal(io.StringIO):
    """A stderr that says it is a terminal."""

    def isatty(self):
        return True


def test_long_passes_show_a_bar_on_rank_0_of_a_terminal_only(monkeypatch):
    tok = Tokenizer({"kind": "char", "chars": CHARS})
    ids = np.array(tok.encode(TEXT * 2), dtype=np.uint16)
    model = tiny(len(CHARS))
    examples = [{"ctx": "speak", "endings": ["a", "b", "c", "d"], "label": 0}] * 3
    for stderr, rank, shown in ((Terminal(), "0", True), (io.StringIO(), "0", False), (Terminal(), "1", False)):
        monkeypatch.setattr(sys, "stderr", stderr)
        monkeypatch.setenv("RANK", rank)
        bpb.bits_per_byte(model, ids, tok, 4, contextlib.nullcontext())
        hellaswag.hellaswag_counts(model, tok, examples)
        probe.greedy(model, [[1, 2], [3], [4, 5]], "cpu", 3)  # qa's and recall's decoding
        bars = stderr.getvalue()
        for what in ("bits per byte", "/10 [", "hellaswag", "/3 [", "greedy decoding"):  # its name and total
            assert (what in bars) == shown, (rank, what, bars)


# --------------------------------------------------------------------------- HellaSwag

class KnownLogits(torch.nn.Module):
    """A stand-in model whose next-token log-probabilities depend only on the token: p(t) given
    by a fixed table, whatever came before, so losses can be summed by hand."""

    def __init__(self, logp):
        super().__init__()
        self.config = GPTConfig(n_layer=1, n_head=1, n_embd=8, block_size=64, vocab_size=len(logp))
        self.table = torch.nn.Parameter(torch.tensor(logp, dtype=torch.float32), requires_grad=False)

    def forward(self, idx, targets=None):
        return self.table.expand(*idx.shape, -1), None  # (B, T, V)


def write_hellaswag(path, examples):
    with open(path, "w", encoding="utf-8") as f:
        for i, (ctx, endings, label) in enumerate(examples):
            a, _, b = ctx.partition(" ")
            f.write(json.dumps({"ind": i, "activity_label": "Test", "ctx_a": a, "ctx_b": b, "ctx": ctx,
                                "endings": endings, "source_id": f"test~{i}", "split": "val",
                                "split_type": "indomain", "label": label}) + "\n")


def test_hellaswag_acc_and_acc_norm_by_hand(tmp_path):
    # characters as tokens; cheap letters: a (-1), b (-2); dear: c (-3), space (-0.5), others -6
    tok = Tokenizer({"kind": "char", "chars": " abcx"})
    logp = [-0.5, -1.0, -2.0, -3.0, -6.0]
    examples = [
        ("x x", ["a", "aaa", "c", "x"], 0),  # sums: -1.5, -3.5, -3.5, -6.5 ; means: -.75, -.875, -1.75, -3.25
        ("x", ["bb", "aaaa", "c", "b"], 1),  # sums: -4.5, -4.5, -3.5, -2.5 ; means: -1.5, -.9, -1.75, -1.25
        ("x", ["c", "ab", "x", "bbbbbb"], 3),  # sums: -3.5, -3.5, -6.5, -12.5 ; means: -1.75, -1.17, -3.25, -1.79
    ]
    path = tmp_path / "hellaswag_val.jsonl"
    write_hellaswag(path, examples)

    def by_hand(ending):
        return sum(logp[" abcx".index(ch)] for ch in " " + ending)

    acc = sum(int(np.argmax([by_hand(e) for e in ends])) == y for _, ends, y in examples)
    acc_norm = sum(int(np.argmax([by_hand(e) / (len(e) + 1) for e in ends])) == y for _, ends, y in examples)
    assert (acc, acc_norm) == (1, 2)  # example 0 right by both; example 1 only by the mean; example 2 by neither
    counts = hellaswag.hellaswag_counts(KnownLogits(logp), tok, hellaswag.read_hellaswag(str(path)))
    assert counts == [acc, acc_norm, 3]


def test_hellaswag_rejects_a_file_of_another_schema(tmp_path):
    path = tmp_path / "x.jsonl"
    path.write_text(json.dumps({"ctx": "a", "endings": ["b", "c"], "label": 0}) + "\n")
    with pytest.raises(ValueError, match="not HellaSwag"):
        hellaswag.read_hellaswag(str(path))


def test_hellaswag_counts_are_shared_out_over_ranks(tmp_path):
    """Two ranks' shares (every other example) add up to one process's counts."""
    tok = Tokenizer({"kind": "char", "chars": " abcx"})
    model = KnownLogits([-0.5, -1.0, -2.0, -3.0, -6.0])
    rng = np.random.default_rng(0)
    examples = [{"ctx": "x", "endings": ["".join(rng.choice(list("abc"), rng.integers(1, 5))) for _ in range(4)],
                 "label": int(rng.integers(4))} for _ in range(9)]
    whole = hellaswag.hellaswag_counts(model, tok, examples)
    parts = [hellaswag.hellaswag_counts(model, tok, examples[r::2]) for r in range(2)]
    assert whole == [a + b for a, b in zip(*parts)] and whole[2] == 9


# --------------------------------------------------------------------------- lm-evaluation-harness adapter

class Request:  # what the harness hands an LM: an Instance with .args
    def __init__(self, *args):
        self.args = args


def test_lm_eval_adapter_equals_gptlabs_own_loss():
    pytest.importorskip("lm_eval")
    tok = Tokenizer({"kind": "tiktoken", "name": "gpt2"})
    model = tiny(tok.vocab_size, block_size=16)
    lm = harness.harness_lm(model, tok, batch_size=2)
    context, cont = "The knight of the sad", " countenance rode on"
    (lp, _), = lm.loglikelihood([Request(context, cont)])
    whole, c = tok.encode(context + cont), tok.encode(context)
    x = torch.tensor([whole])
    _, loss = model(x[:, :-1], torch.tensor([[-1] * (len(c) - 1) + whole[len(c):]]))  # loss of the ending only
    assert lp == pytest.approx(-loss.item() * (len(whole) - len(c)), abs=1e-5)

    text = "In a village of La Mancha, the name of which I have no desire to call to mind, there lived"
    ids = tok.encode(text)
    assert len(ids) > 16  # longer than block_size: several windows
    rolled, = lm.loglikelihood_rolling([Request(text)])
    stream = [tok.eot] + ids
    want = 0.0
    for end in range(16, len(ids) + 16, 16):  # windows predicting ids[end-16:end]; the last reads a full block
        end = min(end, len(ids))
        pred = min(16, end - (end - 1) // 16 * 16) if end == len(ids) else 16
        x = torch.tensor([stream[end - 16:end + 1] if end >= 16 else stream[:end + 1]])
        y = x[:, 1:].clone()
        y[:, :y.size(1) - pred] = -1
        _, loss = model(x[:, :-1], y)
        want -= loss.item() * pred
    assert rolled == pytest.approx(want, abs=1e-4)


def test_lm_eval_adapter_generates_greedily_until_a_stop_string():
    pytest.importorskip("lm_eval")
    tok = Tokenizer({"kind": "char", "chars": CHARS})
    model = tiny(len(CHARS))
    lm = harness.harness_lm(model, tok)
    x = torch.tensor([tok.encode("Speak")])
    full = tok.decode(model.generate(x, 10, temperature=0.0, use_cache=False)[0, 5:].tolist())
    stop = full[3]
    out, = lm.generate_until([Request("Speak", {"until": [stop], "max_gen_toks": 10})])
    assert out == full[:full.index(stop)]
    out, = lm.generate_until([Request("Speak", {"until": [], "max_gen_toks": 10})])
    assert out == full


# --------------------------------------------------------------------------- the --task key

def test_task_key_keeps_todays_command_lines(monkeypatch):
    monkeypatch.setattr(evaluate, "task", "")
    monkeypatch.setattr(evaluate, "questions", "")
    assert evaluate.chosen_task() == "loss"
    monkeypatch.setattr(evaluate, "questions", "dev.tsv")
    assert evaluate.chosen_task() == "qa"  # --questions= implies the qa task
    monkeypatch.setattr(evaluate, "task", "bpb")
    with pytest.raises(SystemExit, match="--questions belongs to --task=qa"):
        evaluate.chosen_task()
    monkeypatch.setattr(evaluate, "task", "perplexity")
    with pytest.raises(SystemExit, match="unknown --task='perplexity'; use one of loss, bpb, qa"):
        evaluate.chosen_task()


# --------------------------------------------------------------------------- the command line, in-process

def save_run(folder, vocab_size, tokenizer, block_size=16):
    from checkpoint import save_checkpoint
    model = tiny(vocab_size, block_size)
    os.makedirs(folder, exist_ok=True)
    save_checkpoint({"model": model.state_dict(), "model_args": dict(model.config.__dict__), "iter_num": 7,
                     "config": {}}, os.path.join(folder, "ckpt.pt"))
    with open(os.path.join(folder, "meta.json"), "w") as f:
        json.dump({"vocab_size": vocab_size, "dtype": "uint16", "tokenizer": tokenizer}, f)
    return model


def test_bpb_command_prints_loss_perplexity_and_bits_per_byte(tmp_path):
    spec = {"kind": "char", "chars": CHARS}
    model = save_run(str(tmp_path), len(CHARS), spec)
    ids = Tokenizer(spec).encode(TEXT * 3)
    np.array(ids, dtype=np.uint16).tofile(tmp_path / "val.bin")
    out = in_process("evaluate.py", f"--out_dir={tmp_path}", f"--data_dir={tmp_path}", "--task=bpb",
                     "--batch_size=4", "--device=cpu", "--dtype=float32")
    loss = sum_nats_by_hand(model, ids) / (len(ids) - 1)
    assert f"val loss {loss:.4f}, perplexity {math.exp(loss):.2f} per token; {loss / math.log(2):.4f} bits per byte" in out


def test_hellaswag_command_reads_a_local_file_and_refuses_char_models(tmp_path):
    path = tmp_path / "hs.jsonl"
    write_hellaswag(path, [("A man sits on a roof. He", ["climbs down.", "eats.", "sleeps.", "sings."], 0)] * 2)
    save_run(str(tmp_path / "bpe"), 50257, {"kind": "tiktoken", "name": "gpt2"}, block_size=32)
    out = in_process("evaluate.py", f"--out_dir={tmp_path / 'bpe'}", "--task=hellaswag", f"--input={path}", "--device=cpu")
    assert "hellaswag: acc " in out and "acc_norm" in out and "(2 examples)" in out
    save_run(str(tmp_path / "char"), len(CHARS), {"kind": "char", "chars": CHARS})
    message = exit_message(in_process, "evaluate.py", f"--out_dir={tmp_path / 'char'}", "--task=hellaswag",
                           f"--input={path}", "--device=cpu")
    assert "this model is character-level" in message


def test_hellaswag_offline_without_the_file_says_what_to_do(tmp_path, monkeypatch, network_attempts):
    save_run(str(tmp_path / "bpe"), 50257, {"kind": "tiktoken", "name": "gpt2"}, block_size=32)
    monkeypatch.setattr(common, "DATA_ROOT", str(tmp_path))  # where data/hellaswag/ would be: nothing written here
    message = exit_message(in_process, "evaluate.py", f"--out_dir={tmp_path / 'bpe'}", "--task=hellaswag", "--device=cpu")
    assert "could not download" in message and "pass --input=PATH" in message
    assert not os.path.exists(tmp_path / "hellaswag" / "hellaswag_val.jsonl")
    assert any("raw.githubusercontent.com" in a for a in network_attempts())  # the one attempt, refused offline


@pytest.mark.slow
def test_two_ranks_under_torchrun_print_what_one_process_prints(tmp_path):
    """hellaswag's examples and bpb's windows dealt out over 2 gloo ranks, the counts and nats
    all-reduced: the same figures as one process."""
    import subprocess
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    spec = {"kind": "tiktoken", "name": "gpt2"}
    save_run(str(tmp_path), 50257, spec, block_size=16)
    tok = Tokenizer(spec)
    np.array(tok.encode(TEXT * 4), dtype=np.uint16).tofile(tmp_path / "val.bin")
    rng = np.random.default_rng(0)
    words = TEXT.split()
    write_hellaswag(tmp_path / "hs.jsonl", [(" ".join(rng.choice(words, 6)), [" ".join(rng.choice(words, 3))
                                             for _ in range(4)], int(rng.integers(4))) for _ in range(7)])
    env = dict(os.environ, OMP_NUM_THREADS="1")
    for task in ("bpb", "hellaswag"):
        args = ["evaluate.py", f"--out_dir={tmp_path}", f"--data_dir={tmp_path}", f"--task={task}",
                f"--input={tmp_path / 'hs.jsonl'}", "--device=cpu", "--dtype=float32", "--batch_size=2"]
        one = subprocess.run([sys.executable, *args], cwd=root, env=env, capture_output=True, text=True, timeout=300)
        two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", *args],
                             cwd=root, env=env, capture_output=True, text=True, timeout=300)
        assert one.returncode == 0 and two.returncode == 0, one.stderr[-2000:] + two.stderr[-2000:]
        line = [ln for ln in one.stdout.splitlines() if "bits per byte" in ln or ln.startswith("hellaswag:")]
        assert len(line) == 1 and line[0] in two.stdout.splitlines()
