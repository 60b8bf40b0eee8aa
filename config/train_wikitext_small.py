# WikiText-103 with its own 8192-token byte-level BPE: the "small" model
# (6 layers, 512 wide, 8 heads, FFN 2048, context 128).
#   python data/wikitext/prepare.py && python train.py config/train_wikitext_small.py
# "val ppl" in the log is perplexity per BPE token of the validation split.

out_dir = "out-wikitext-small"
eval_interval = 1000
eval_iters = 100
log_interval = 50
always_save_checkpoint = False

dataset = "wikitext"
gradient_accumulation_steps = 1
batch_size = 64
block_size = 128

n_layer = 6
n_head = 8
n_embd = 512
mlp_hidden = 2048  # the FFN width (4 * n_embd)
dropout = 0.1

learning_rate = 6e-4
max_iters = 50000
lr_decay_iters = 50000
min_lr = 6e-5
warmup_iters = 1000
