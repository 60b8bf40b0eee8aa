# CS224N a5's finetuning recipe, for a GPU: "Where was X born?<TAB>answer" for 10 epochs after
# pretraining (config/birthplace_pretrain.py), or 75 epochs from scratch:
#   python train.py config/birthplace_finetune.py
#   python train.py config/birthplace_finetune.py --init_from=scratch --max_iters=600 --lr_decay_iters=600 --out_dir=out-birthplace-scratch
# then: python evaluate.py --out_dir=out-birthplace-finetune --task=qa   (dev accuracy, test predictions)

out_dir = "out-birthplace-finetune"
init_from = "ckpt:out-birthplace-pretrain"  # the pretrained weights, a fresh optimizer and count
eval_interval = 40
eval_iters = 8
log_interval = 8

dataset = "birthplace/finetune"
gradient_accumulation_steps = 1
batch_size = 256
block_size = 128

# the course's model (taken from the checkpoint when finetuning; these must match it)
n_layer = 4
n_head = 8
n_embd = 256
dropout = 0.1

# 2,000 questions / 256 per batch = 8 iterations per epoch
_epoch = -(-2000 // batch_size)
max_iters = 10 * _epoch
learning_rate = 6e-4
warmup_iters = 1  # the course warms up over 10,240 tokens: one batch
lr_decay_iters = max_iters
min_lr = learning_rate / 10
weight_decay = 0.1
beta1, beta2 = 0.9, 0.95
grad_clip = 1.0
