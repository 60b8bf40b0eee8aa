# A 5.1B-parameter GPT from scratch on OpenWebText, one node of 8 x 80 GB GPUs. It only fits with
# FSDP: under DDP each GPU would hold all of the weights, gradients and AdamW state in fp32, 16 bytes
# per parameter = 82 GB before one activation; sharded 8 ways that is 10 GB (docs/fsdp.md has the sums).
#   python data/openwebtext/prepare.py
#   torchrun --standalone --nproc_per_node=8 train.py config/train_5b_fsdp.py
# Sharded checkpoints (every rank writes its part); one ckpt.pt for sample.py:
#   python parallel.py out-5b/ckpt_dcp

out_dir = "out-5b"
dataset = "openwebtext"
fsdp = True
activation_checkpointing = True  # at 16 sequences per GPU the activations would take ~70 GB without it
ckpt_format = "sharded"  # a full ckpt.pt would gather 61 GB (weights and AdamW state) into rank 0's host memory

# 32 layers x 3584 wide (28 heads of 128), no biases: 12 * 32 * 3584^2 = 4.93B in the blocks,
# and the tied 50304 x 3584 embedding, 0.18B
n_layer = 32
n_head = 28
n_embd = 3584
bias = False
block_size = 1024
# 16 sequences x 1024 tokens x 32 micro-steps (4 per GPU) = 524,288 tokens per step
batch_size = 16
gradient_accumulation_steps = 4 * 8

# ~20 tokens per parameter (Chinchilla) is 100B tokens: 200k steps
max_iters = 200000
lr_decay_iters = 200000
learning_rate = 1.5e-4  # lower than GPT-2 124M's 6e-4, as for GPT-3's 6.7B (1.2e-4)
min_lr = 1.5e-5
warmup_iters = 2000
weight_decay = 1e-1
grad_clip = 1.0

eval_interval = 1000
eval_iters = 200
log_interval = 10
compile = True
