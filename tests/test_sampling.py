"""Samples in one batch: with a generator per row, model.generate gives each row the text it gives
that row alone, end-of-text included; sample.py decodes num_samples rows together and prints what
one-at-a-time runs with seeds seed, seed + 1, ... print, streamed or not."""

import json
import os

import torch

from conftest import in_process
from model import GPT, GPTConfig

TINY = dict(n_layer=2, n_head=4, n_embd=64, block_size=32, vocab_size=97, dropout=0.0)
SEEDS = (1, 2, 3, 4)


def tiny(vocab_size=97):
    torch.manual_seed(0)
    return GPT(GPTConfig(**dict(TINY, vocab_size=vocab_size))).eval()


def generators(seeds):
    return [torch.Generator().manual_seed(s) for s in seeds]


def test_a_generator_per_row_makes_each_row_independent_of_the_batch():
    model = tiny()
    prompt = torch.tensor([[5, 6, 7]])  # (1, 3)
    kw = dict(temperature=1.0, top_k=50, top_p=0.95)
    n = 2 * TINY["block_size"]  # the window slides too
    eos = model.generate(prompt, 12, generator=generators([3]), **kw)[0, -1].item()  # row 3 ends at its 12th token
    alone = [model.generate(prompt, n, generator=generators([s]), eos_token=eos, **kw)[0] for s in SEEDS]
    batch = model.generate(prompt.repeat(len(SEEDS), 1), n, generator=generators(SEEDS), eos_token=eos, **kw)
    assert len(alone[2]) <= 3 + 12 < batch.size(1)  # one row ended early, the batch went on
    for row, one in zip(batch, alone):
        assert torch.equal(row[:len(one)], one)
        assert (row[len(one):] == eos).all()  # a finished row repeats its end-of-text token
    shared = model.generate(prompt.repeat(len(SEEDS), 1), n, generator=torch.Generator().manual_seed(1), **kw)
    assert not torch.equal(shared[1, :len(alone[1])], alone[1])  # one generator for all: rows depend on the batch


def save_tiny_run(folder, char_data):
    from checkpoint import save_checkpoint
    vocab = json.load(open(os.path.join(char_data, "meta.json")))["vocab_size"]
    model = tiny(vocab)
    os.makedirs(folder, exist_ok=True)
    save_checkpoint({"model": model.state_dict(), "model_args": dict(model.config.__dict__), "iter_num": 0,
                     "config": {}}, os.path.join(folder, "ckpt.pt"))
    return str(folder)


def test_sample_batch_prints_what_one_at_a_time_runs_print(tmp_path, char_data):
    out = save_tiny_run(tmp_path / "run", char_data)
    args = (f"--out_dir={out}", f"--data_dir={char_data}", "--max_new_tokens=50", "--start=ROMEO:", "--device=cpu",
            "--dtype=float32")
    batched = in_process("sample.py", *args, "--num_samples=3", "--seed=7")
    one_at_a_time = "".join(in_process("sample.py", *args, "--num_samples=1", f"--seed={7 + k}") for k in range(3))
    assert batched == one_at_a_time
    samples = batched.split("---------------\n")
    assert len(samples) == 4 and samples[-1] == "" and len(set(samples[:3])) == 3
    assert all(s.startswith("ROMEO:") and len(s) == len("ROMEO:") + 50 + 1 for s in samples[:3])  # and a newline
    assert in_process("sample.py", *args, "--num_samples=3", "--seed=7", "--stream=True") == batched


def test_a_row_is_cut_after_its_end_of_text_token():
    from sample import until_end
    assert until_end([4, 5, 9, 9, 9], 9) == [4, 5, 9]
    assert until_end([4, 5, 6], 9) == [4, 5, 6] and until_end([4, 5, 9], None) == [4, 5, 9]


def test_samples_are_decoded_at_most_sample_batch_at_a_time(tmp_path, char_data, monkeypatch):
    """Each row holds a KV cache of block_size positions, so the batch is capped: --sample_batch
    rows at a time, and the same text as one batch of them all."""
    out = save_tiny_run(tmp_path / "run", char_data)
    args = (f"--out_dir={out}", f"--data_dir={char_data}", "--max_new_tokens=20", "--start=ROMEO:", "--device=cpu",
            "--dtype=float32", "--num_samples=5", "--seed=3")
    rows, stream = [], GPT.stream

    def counted(self, idx, *a, **kw):
        rows.append(idx.size(0))
        return stream(self, idx, *a, **kw)

    monkeypatch.setattr(GPT, "stream", counted)
    together = in_process("sample.py", *args, "--sample_batch=5")
    assert rows == [5]
    rows.clear()
    assert in_process("sample.py", *args, "--sample_batch=2") == together and rows == [2, 2, 1]
    rows.clear()
    assert in_process("sample.py", *args, "--sample_batch=2", "--stream=True") == together and rows == [2, 2, 1]
    rows.clear()
    in_process("sample.py", *args)  # the default caps the batch too
    assert max(rows) <= 8
