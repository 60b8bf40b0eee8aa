# GPT-2 124M on OpenWebText, on one node of 8 A100 40GB (about 4 days to loss ~2.85).
#   python data/openwebtext/prepare.py
#   torchrun --standalone --nproc_per_node=8 train.py config/train_gpt2.py

out_dir = "out-gpt2"
wandb_log = False
wandb_project = "owt"
wandb_run_name = "gpt2-124M"

dataset = "openwebtext"
# 12 sequences * 1024 tokens * 40 micro-steps (5 per GPU on 8 GPUs) = ~491,520 tokens per step
batch_size = 12
block_size = 1024
gradient_accumulation_steps = 5 * 8

# GPT-2 124M: the GPTConfig defaults (12 layers, 12 heads, 768 wide)
max_iters = 600000  # 300B tokens
lr_decay_iters = 600000
learning_rate = 6e-4
min_lr = 6e-5
warmup_iters = 2000
weight_decay = 1e-1

eval_interval = 1000
eval_iters = 200
log_interval = 10
compile = True
