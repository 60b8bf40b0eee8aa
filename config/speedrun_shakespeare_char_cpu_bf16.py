# Speedrun on a CPU with bf16 units (AMX or AVX512-BF16: Intel Sapphire Rapids and later, AMD Zen 4
# and later): config/speedrun_shakespeare_char_cpu.py with bf16 autocast, which reached the target
# at 225 iterations. On a CPU without bf16 units torch emulates bf16 and this is many times
# slower than the fp32 config (train.py warns).
#   python data/shakespeare_char/prepare.py && python train.py config/speedrun_shakespeare_char_cpu_bf16.py

exec(open("config/speedrun_shakespeare_char_cpu.py").read())

out_dir = "out-speedrun-shakespeare-char-cpu-bf16"
dtype = "bfloat16"  # AMX: the matmuls ran ~3x faster than fp32 at this size
# 74 ms a step against 142 with the fused attention, whose bf16 backward is slow
attn_impl = "manual"
