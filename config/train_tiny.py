# CMU 11-667's "GPT-tiny" (homework 2, decoder from scratch): 2 layers, 2 heads, 32 wide, context
# 128 (1.64M parameters, 1.61M of them the 50,304 x 32 token embedding), batches of 32 x 128
# GPT-2 tokens, one micro-step per step, lr 5e-4 to 1e-4 over 2000 steps after 10 of warmup:
# the course's configs/GPT-tiny.yaml, on tiny Shakespeare in GPT-2's BPE instead of its own tokens.
#   python data/shakespeare/prepare.py && python train.py config/train_tiny.py
# Each step's line shows the achieved TFLOP/s (the course's "TFLOPS"); MFU too where the peak is known.
# On a CPU (2-core Intel with AMX, dtype=auto: bf16; 2026-12-05, 6d198eb): 2000 iterations in 49.8 min of
# wall time (1.43 s/step: the 50,304-wide logits dominate), val loss 5.697 (ppl 298), 0.028 TFLOP/s.

out_dir = "out-tiny"
eval_interval = 500
eval_iters = 20  # 20 x 32 x 128 = 82k tokens per split
log_interval = 50
always_save_checkpoint = False

dataset = "shakespeare"
gradient_accumulation_steps = 1  # train.py's default is 40: without this line, 40 micro-batches a step
batch_size = 32
block_size = 128

n_layer = 2
n_head = 2
n_embd = 32
dropout = 0.0

learning_rate = 5e-4  # the course's max_lr
min_lr = 1e-4  # the course's min_lr
warmup_iters = 10
max_iters = 2000
lr_decay_iters = 2000
