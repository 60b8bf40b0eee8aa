# Don Quixote at the character level: nanoGPT's "baby GPT" (6 layers, 6 heads, 384 wide,
# context 256; 10.7M parameters) on a one-GPU budget.
#   python data/don_char/prepare.py && python train.py config/train_don_char.py
# On a CPU, nanoGPT's CPU recipe: add --device=cpu --compile=False --eval_iters=20 --n_layer=4 --n_head=4
# --n_embd=128 --block_size=64 --batch_size=12 --max_iters=2000 --lr_decay_iters=2000 --dropout=0.0
# (without --lr_decay_iters the cosine runs over 5000 iterations and stops near 7e-4).

out_dir = "out-don-char"
eval_interval = 250
eval_iters = 200
log_interval = 10
always_save_checkpoint = False  # the model overfits late; keep the best val checkpoint

dataset = "don_char"
gradient_accumulation_steps = 1
batch_size = 64
block_size = 256  # context of up to 256 previous characters

n_layer = 6
n_head = 6
n_embd = 384
dropout = 0.2

learning_rate = 1e-3  # a small model can take a high rate
max_iters = 5000
lr_decay_iters = 5000  # make equal to max_iters usually
min_lr = 1e-4  # learning_rate / 10 usually
beta2 = 0.99  # a little larger: few tokens per iteration
warmup_iters = 100
