# The knowledge probe's finetuning on a CPU: the course's recipe with 30 epochs instead of 10
# (10 were not enough to learn even the training questions after a short pretraining).
#   python train.py config/birthplace_finetune_cpu.py                  # from out-birthplace-pretrain-cpu
#   python train.py config/birthplace_finetune_cpu.py --init_from=ckpt:out-birthplace-pretrain-cpu/ckpt-00004600.pt
#   python train.py config/birthplace_finetune_cpu.py --init_from=scratch --max_iters=600 --lr_decay_iters=600 --out_dir=out-birthplace-scratch-cpu
# Questions of like length are batched together (4 bands of 500), which cuts the padding.

from train import cpu_has_bf16

exec(open("config/birthplace_finetune.py").read())

out_dir = "out-birthplace-finetune-cpu"
init_from = "ckpt:out-birthplace-pretrain-cpu"
device = "cpu"
dtype = "bfloat16" if cpu_has_bf16() else "float32"  # emulated bf16 is far slower than fp32
compile = False
dropout = 0.0  # as the CPU pretraining: with 0.1 the finetune val loss ended at 2.06, with 0.0 at 1.69
length_bands = 4
max_iters = 30 * _epoch  # 240 iterations
lr_decay_iters = max_iters
eval_interval = max_iters
