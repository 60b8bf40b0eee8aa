# The knowledge probe's finetuning on a CPU: the course's 10 epochs in batches of 64 instead of
# 256 (four times the updates for the same compute), at lr 3e-5 instead of 6e-4 (at 6e-4 the
# finetune learns its questions by heart and overwrites what pretraining stored). 3e-5 was chosen
# on the holdout for both the plain and the mixed pretraining (2026-12-07, docs/birthplace.md:
# 25.0% and 28.0% of the holdout at 320 iterations, against 24.5% and 27.5% at 1e-4 and 18.0%
# and 23.0% at 3e-4); the mixed model's best is 640 iterations (--max_iters=640 --lr_decay_iters=640
# --eval_interval=640, 29.0%). With the holdout (prepare.py's default) it trains on 1,800 questions.
#   python train.py config/birthplace_finetune_cpu.py                  # from out-birthplace-pretrain-cpu
#   python train.py config/birthplace_finetune_cpu.py --init_from=ckpt:out-birthplace-pretrain-cpu/ckpt-00003680.pt
#   python train.py config/birthplace_finetune_cpu.py --init_from=ckpt:out-birthplace-pretrain-synth-cpu --max_iters=1280 --lr_decay_iters=1280 --eval_interval=1280 --learning_rate=1e-4 --min_lr=1e-5   # the Synthesizer: 40 epochs at 1e-4
#   python train.py config/birthplace_finetune_cpu.py --init_from=scratch --max_iters=640 --lr_decay_iters=640 --learning_rate=6e-4 --min_lr=6e-5 --out_dir=out-birthplace-scratch-cpu
# Questions of like length are batched together (4 bands of 500), which cuts the padding.

exec(open("config/birthplace_finetune.py").read())

out_dir = "out-birthplace-finetune-cpu"
init_from = "ckpt:out-birthplace-pretrain-cpu"
device = "cpu"
dtype = "auto"  # bf16 where the CPU has bf16 units (AMX), else fp32: emulated bf16 is far slower
compile = False
dropout = 0.0  # as the CPU pretraining: with 0.1 the finetune val loss ended at 2.06, with 0.0 at 1.69
length_bands = 4
batch_size = 64  # the course's 10 epochs, but in four times the updates of its batches of 256
_epoch = -(-2000 // batch_size)  # 32 iterations
max_iters = 10 * _epoch  # 320 iterations
lr_decay_iters = max_iters
eval_interval = max_iters
learning_rate = 3e-5  # from scratch, use the course's 6e-4 (and min_lr 6e-5)
min_lr = learning_rate / 10
