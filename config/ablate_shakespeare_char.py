# The ablation on a CPU: character-level Shakespeare, a 0.8M-parameter GPT, 2,500 steps.
# 76 ms (baseline) to 119 ms (SwiGLU+RoPE+RMSNorm) a step on 2 cores (bench.py); the 7 runs
# took 40 minutes in all on a 2-core machine (docs/results.md).
#   python data/shakespeare_char/prepare.py
#   python ablate.py config/ablate_shakespeare_char.py            # add --seeds=3 for the noise
# ablate.py sets the five ablation flags itself (use_swiglu, use_rope, use_rmsnorm,
# use_warmup, use_cosine); everything else below is shared by every run.

out_dir = "out-ablate-shakespeare-char"
eval_interval = 250
eval_iters = 40  # 40 x 16 x 128 = 82k characters per split: the val estimate moves by ~0.005
log_interval = 10
always_save_checkpoint = True  # a checkpoint at every evaluation, so an interrupted run resumes

dataset = "shakespeare_char"
device = "cpu"
compile = False
gradient_accumulation_steps = 1
batch_size = 16
block_size = 128  # long enough that how positions are encoded matters

n_layer = 4
n_head = 4
n_embd = 128
dropout = 0.0  # 5M training tokens, ~5 passes over the text: too few for this model to overfit much
bias = False

learning_rate = 2e-3  # high enough that starting at the full rate (no warmup) is a real risk
max_iters = 2500
warmup_iters = 250  # 10% of the run, when use_warmup is on
lr_decay_iters = 2500  # cosine reaches min_lr at the last step, when use_cosine is on
min_lr = 2e-4
beta2 = 0.99  # few tokens per step
