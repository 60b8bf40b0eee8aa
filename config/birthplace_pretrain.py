# CS224N a5's pretraining recipe, for a GPU: span corruption on wiki.txt for 650 epochs.
#   python data/birthplace/prepare.py && python train.py config/birthplace_pretrain.py
# then config/birthplace_finetune.py. The CPU recipe is config/birthplace_pretrain_cpu.py.

out_dir = "out-birthplace-pretrain"
eval_interval = 1150  # every 50 epochs
eval_iters = 20
log_interval = 23
ckpt_interval = 1150

dataset = "birthplace/pretrain"
gradient_accumulation_steps = 1
batch_size = 128
block_size = 128

# the course's model: 4 layers, 8 heads, 256 wide (3.3M parameters)
n_layer = 4
n_head = 8
n_embd = 256
dropout = 0.1

# the course counts epochs: 2,937 documents / 128 per batch = 23 iterations per epoch
_epoch = -(-2937 // batch_size)  # (names starting with _ are the config's own, not keys)
max_iters = 650 * _epoch
learning_rate = 6e-3
warmup_iters = 2  # the course warms up over 10,240 tokens: one or two batches
lr_decay_iters = max_iters
min_lr = learning_rate / 10  # the course's cosine ends at a tenth of the peak
weight_decay = 0.1
beta1, beta2 = 0.9, 0.95
grad_clip = 1.0
