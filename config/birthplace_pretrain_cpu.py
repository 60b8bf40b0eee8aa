# The knowledge probe's pretraining on a CPU (2 cores): the course's model, with 261 epochs of
# span corruption in batches of 32 instead of the course's 650 in batches of 128. After
# config/birthplace_finetune_cpu.py, on dev (London: 5.0%; docs/birthplace.md): 25.0% from a 48-minute
# run in bf16 on 2 AMD EPYC Zen 5 cores (2026-12-07), 26.0% from an 86-minute one on 2 Intel cores with
# AMX (2026-12-05). A step takes about 0.12 s there; in fp32 on 2 AVX2 cores (an older AMD EPYC) about
# 0.50 s, so 24,000 iterations take over 3 hours there.
#   python train.py config/birthplace_pretrain_cpu.py
#   python train.py config/birthplace_pretrain_cpu.py --init_from=resume     # continue a stopped run
# What makes it fit: batches of 32 at lr 1e-3 instead of 128 at 6e-3 (four times the updates
# for the same compute, and on this task far more learnt per second), rotary positions, every
# batch cut to its longest example, examples of like length batched together (length_bands),
# flushed denormals, and bf16 autocast where the CPU has bf16 units (AMX). Measured figures
# (time per step, loss, dev accuracy after config/birthplace_finetune_cpu.py): see docs/birthplace.md.

exec(open("config/birthplace_pretrain.py").read())

out_dir = "out-birthplace-pretrain-cpu"
device = "cpu"
dtype = "auto"  # bf16 where the CPU has bf16 units (AMX), else fp32: emulated bf16 is far slower
compile = False
dropout = 0.0  # 130 epochs leave the model underfit, so dropout would only slow the memorising

batch_size = 32
length_bands = 8
use_rope = True  # rotary positions: on this task a clear lead over the learned table (see docs/birthplace.md)
_epoch = -(-2937 // batch_size)  # 92 iterations
max_iters = 24000  # 261 epochs: the holdout rose with each kept checkpoint up to here (docs/birthplace.md)
learning_rate = 1e-3
min_lr = learning_rate / 10
warmup_iters = 100
lr_decay_iters = max_iters
log_interval = 92
eval_interval = 4000
eval_iters = 20
ckpt_interval = 4000
keep_last = 6  # ckpt-<iter>.pt every 4,000 iterations too: finetune from any of them to see the curve
