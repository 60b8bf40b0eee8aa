"""
The tasks evaluate.py measures, one module each (how each scores: docs/evaluation.md):

    probe.py      the knowledge probe: greedy answers to questions (qa), what pretraining stored (recall)
    bpb.py        loss, perplexity and bits per byte over one full pass of a split
    hellaswag.py  HellaSwag's validation set, completion style: acc and acc_norm
    harness.py    gptlab's GPT as an lm-evaluation-harness model
    scoring.py    the log-probability of a continuation given its context (hellaswag, harness)
    ranks.py      what every task does under torchrun: a bar on rank 0, sums over the ranks

evaluate.py is the stage: its settings, the model loaded once, the task chosen, the figures printed.
"""
