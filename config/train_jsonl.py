# GPT-2 small on a corpus prepared by data/jsonl/prepare.py (the Pile, RedPajama, ...).
#   python data/jsonl/prepare.py --input='pile/train/*.jsonl.zst' && python train.py config/train_jsonl.py
# A one-GPU recipe; for 8 GPUs see config/train_gpt2.py with --dataset=jsonl.

out_dir = "out-jsonl"
eval_interval = 1000
eval_iters = 100
log_interval = 10

dataset = "jsonl"
gradient_accumulation_steps = 40  # 40 * 12 * 1024 = ~0.5M tokens per step
batch_size = 12
block_size = 1024

learning_rate = 6e-4
max_iters = 20000
lr_decay_iters = 20000
min_lr = 6e-5
warmup_iters = 1000
