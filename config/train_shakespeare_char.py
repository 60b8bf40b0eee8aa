# A baby GPT on character-level Shakespeare: the GPU recipe (nanoGPT's numbers).
# About 3 minutes on an A100; val loss around 1.47.
#   python data/shakespeare_char/prepare.py && python train.py config/train_shakespeare_char.py

out_dir = "out-shakespeare-char"
eval_interval = 250  # it overfits on this small corpus; keep an eye on val
eval_iters = 200
log_interval = 10
always_save_checkpoint = False  # only save when val improves

wandb_log = False
wandb_project = "shakespeare-char"
wandb_run_name = "mini-gpt"

dataset = "shakespeare_char"
gradient_accumulation_steps = 1
batch_size = 64
block_size = 256  # context of up to 256 characters

n_layer = 6
n_head = 6
n_embd = 384
dropout = 0.2
bias = False

learning_rate = 1e-3  # a tiny network can take a high rate
max_iters = 5000
lr_decay_iters = 5000
min_lr = 1e-4
beta2 = 0.99  # a bit higher because there are few tokens per iteration
warmup_iters = 100
compile = True
