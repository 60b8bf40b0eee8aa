# The ablation on one GPU: GPT-2 small (124M) on a JSON-lines corpus (the Pile, RedPajama, ...).
# 3,000 steps of 131k tokens = 0.39B tokens per run. At ~400k tokens/s (an H100, bf16,
# compile; an estimate, not yet measured) that is ~17 minutes a run, ~2 hours for all 7.
#   python data/jsonl/prepare.py --input='pile/train/*.jsonl.zst'
#   python ablate.py config/ablate_jsonl.py                  # --seeds=3 triples it
# ablate.py sets the five ablation flags itself (use_swiglu, use_rope, use_rmsnorm,
# use_warmup, use_cosine); everything else below is shared by every run.

out_dir = "out-ablate-jsonl"
eval_interval = 250
eval_iters = 50  # 50 x 32 x 1024 = 1.6M tokens per split
log_interval = 10
always_save_checkpoint = True  # a checkpoint at every evaluation, so an interrupted run resumes

dataset = "jsonl"
compile = True
gradient_accumulation_steps = 4  # 4 x 32 x 1024 = 131,072 tokens per step
batch_size = 32
block_size = 1024

# GPT-2 small: the GPTConfig defaults (12 layers, 12 heads, 768 wide, biases, tied embeddings)
dropout = 0.0

learning_rate = 6e-4  # GPT-2 small's; the baseline takes it from step 0 and holds it
max_iters = 3000
warmup_iters = 300  # 10% of the run, when use_warmup is on
lr_decay_iters = 3000  # cosine reaches min_lr at the last step, when use_cosine is on
min_lr = 6e-5
weight_decay = 1e-1
