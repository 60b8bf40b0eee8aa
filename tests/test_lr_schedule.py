"""optim.py's schedule as a multiplier on each parameter group's own initial rate: the rate every
group gets at every step is bit for bit what the loop gave before the schedule moved there
(AdamW and Adafactor groups: the schedule's value; Muon's: that value * muon_lr / learning_rate)."""

import math

import pytest
import torch

from model import GPT, GPTConfig
from optim import Muon, apply_lr, configure_optimizers, get_lr, load_optimizer_states, remember_initial_lr


def old_loop_rates(optimizers, it, lr_cfg, muon_lr):
    """The rates as train.py's loop set them before optim.py: a copy of that code."""
    learning_rate = lr_cfg["learning_rate"]
    if not lr_cfg["decay_lr"]:
        lr = learning_rate
    else:
        lr = get_lr(it, learning_rate, lr_cfg["min_lr"], lr_cfg["warmup_iters"], lr_cfg["lr_decay_iters"],
                    lr_cfg["use_warmup"], lr_cfg["use_cosine"])
    return [[lr * muon_lr / learning_rate if isinstance(opt, Muon) else lr for _ in opt.param_groups]
            for opt in optimizers]


SCHEDULES = [  # the quickstart's, the speedrun's, the CPU birthplace's, GPT-2's (shortened), and each switch off
    dict(learning_rate=1e-3, min_lr=1e-4, warmup_iters=10, lr_decay_iters=60),
    dict(learning_rate=4e-3, min_lr=2e-4, warmup_iters=30, lr_decay_iters=90),
    dict(learning_rate=1e-3, min_lr=1e-3 / 10, warmup_iters=7, lr_decay_iters=97),
    dict(learning_rate=6e-4, min_lr=6e-5, warmup_iters=20, lr_decay_iters=70),
    dict(learning_rate=6e-4, min_lr=6e-5, warmup_iters=20, lr_decay_iters=70, use_warmup=False),
    dict(learning_rate=6e-4, min_lr=6e-5, warmup_iters=20, lr_decay_iters=70, use_cosine=False),
    dict(learning_rate=6e-4, min_lr=6e-5, warmup_iters=20, lr_decay_iters=70, decay_lr=False),
]


@pytest.mark.parametrize("optimizer", ["adamw", "adafactor", "muon"])
@pytest.mark.parametrize("sched", SCHEDULES)
def test_every_group_gets_the_same_rate_as_before_bit_for_bit(optimizer, sched):
    cfg = {"use_warmup": True, "use_cosine": True, "decay_lr": True, **sched}
    muon_lr = 0.05
    model = GPT(GPTConfig(n_layer=1, n_head=2, n_embd=16, block_size=8, vocab_size=11))
    optimizers = configure_optimizers(model, 0.1, cfg["learning_rate"], (0.9, 0.95), "cpu", optimizer, muon_lr)
    remember_initial_lr(optimizers)
    assert len({type(o) for o in optimizers}) == (2 if optimizer == "muon" else 1)
    for it in range(cfg["lr_decay_iters"] + 5):  # warmup, cosine, and the flat tail after it
        lr = get_lr(it, cfg["learning_rate"], cfg["min_lr"], cfg["warmup_iters"], cfg["lr_decay_iters"],
                    cfg["use_warmup"], cfg["use_cosine"], cfg["decay_lr"])
        apply_lr(optimizers, lr, cfg["learning_rate"])
        got = [[g["lr"] for g in opt.param_groups] for opt in optimizers]
        assert got == old_loop_rates(optimizers, it, cfg, muon_lr), it  # == on floats: bit for bit


def test_the_schedule_at_its_landmarks():
    lr = lambda it, **kw: get_lr(it, 1.0, 0.1, 10, 110, **kw)  # noqa: E731
    assert lr(0) == 1 / 11 and lr(9) == 10 / 11  # warmup never starts at 0
    assert lr(10) == 1.0 and math.isclose(lr(60), 0.55) and lr(110) == 0.1 and lr(500) == 0.1
    assert lr(0, use_warmup=False) == 1.0 and lr(60, use_warmup=False) < 1.0
    assert lr(50, use_cosine=False) == 1.0 and lr(0, decay_lr=False) == lr(500, decay_lr=False) == 1.0


def test_resume_keeps_each_groups_initial_rate_even_from_old_checkpoints():
    model = GPT(GPTConfig(n_layer=1, n_head=2, n_embd=16, block_size=8, vocab_size=11))
    adamw, muon = configure_optimizers(model, 0.1, 1e-3, (0.9, 0.95), "cpu", "muon", 0.05)
    old = [adamw.state_dict(), muon.state_dict()]  # saved before initial_lr existed: the groups lack it
    for state, lr in zip(old, (2e-4, 1e-2)):
        for g in state["param_groups"]:
            assert "initial_lr" not in g
            g["lr"] = lr  # and hold the last step's scheduled rate
    fresh = configure_optimizers(model, 0.1, 1e-3, (0.9, 0.95), "cpu", "muon", 0.05)
    remember_initial_lr(fresh)
    load_optimizer_states(fresh, old)
    assert [g["initial_lr"] for o in fresh for g in o.param_groups] == [1e-3, 1e-3, 0.05]
    apply_lr(fresh, 5e-4, 1e-3)
    assert [g["lr"] for o in fresh for g in o.param_groups] == [5e-4, 5e-4, 5e-4 * 0.05 / 1e-3]
