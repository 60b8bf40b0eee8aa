# Character-level Shakespeare on a laptop CPU: the quickstart recipe.
# About a minute per 1000 iterations on 2 cores; val loss 1.89 to 1.90 after 2000 (docs/results.md).
#   python data/shakespeare_char/prepare.py && python train.py config/train_shakespeare_char_cpu.py

out_dir = "out-shakespeare-char-cpu"
eval_interval = 250
eval_iters = 20
log_interval = 10
always_save_checkpoint = False

dataset = "shakespeare_char"
device = "cpu"
dtype = "float32"  # the same numbers on every CPU (bf16 units or not)
compile = False  # try --compile=True: slower to start, faster per step
gradient_accumulation_steps = 1
batch_size = 12
block_size = 64

n_layer = 4
n_head = 4
n_embd = 128
dropout = 0.0
bias = False  # as nanoGPT trains it: a little faster, as good

learning_rate = 1e-3
max_iters = 2000
lr_decay_iters = 2000
min_lr = 1e-4
beta2 = 0.99
warmup_iters = 100
