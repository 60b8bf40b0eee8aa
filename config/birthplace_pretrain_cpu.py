# The knowledge probe's pretraining on a CPU (2 cores with bf16 units): the course's model and
# learning rate, with a 2-hour budget instead of the course's 650 epochs (3.3 hours even here).
#   python train.py config/birthplace_pretrain_cpu.py
#   python train.py config/birthplace_pretrain_cpu.py --init_from=resume     # continue a stopped run
# What makes it fit: every batch cut to its longest example, bf16 autocast (CPUs with AMX) and
# flushed denormals; a trial measured 3 s per step padded, 1.2 s cut, 0.8 s cut in bf16. We saw
# 1.05-1.3 s per step on 2 shared cores: 5,520 iterations take 1.6 to 2 hours. Without bf16 units
# (AVX2 only) it runs in fp32 at 2.5-2.8 s a step: about 4 hours.

from train import cpu_has_bf16

exec(open("config/birthplace_pretrain.py").read())

out_dir = "out-birthplace-pretrain-cpu"
device = "cpu"
dtype = "bfloat16" if cpu_has_bf16() else "float32"  # emulated bf16 is far slower than fp32
compile = False
dropout = 0.0  # a 240-epoch budget leaves the model underfit, so dropout would only slow the memorising

max_iters = 240 * _epoch  # 5,520 iterations
lr_decay_iters = max_iters
eval_interval = 30 * _epoch  # every 30 epochs (about 15 minutes)
eval_iters = 10
ckpt_interval = 30 * _epoch
keep_last = 8  # ckpt-<iter>.pt every 30 epochs too: finetune from any of them to see the curve
