# WikiText-103 with its own 8192-token byte-level BPE: the "base" model
# (12 layers, 768 wide, 12 heads, FFN 3072, context 256).
#   python data/wikitext/prepare.py && python train.py config/train_wikitext_base.py
# "val ppl" in the log is perplexity per BPE token of the validation split.

out_dir = "out-wikitext-base"
eval_interval = 1000
eval_iters = 100
log_interval = 50
always_save_checkpoint = False

dataset = "wikitext"
gradient_accumulation_steps = 2
batch_size = 32
block_size = 256

n_layer = 12
n_head = 12
n_embd = 768
mlp_hidden = 3072  # the FFN width (4 * n_embd)
dropout = 0.1

learning_rate = 3e-4
max_iters = 100000
lr_decay_iters = 100000
min_lr = 3e-5
warmup_iters = 2000
