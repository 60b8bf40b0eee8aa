# Finetune OpenAI's GPT-2 XL (1558M) on tiny Shakespeare with FSDP, on one node of 8 GPUs: each GPU
# keeps 1/8 of the weights, gradients and AdamW state (~3 GB instead of ~25 GB; docs/fsdp.md).
#   python data/shakespeare/prepare.py
#   torchrun --standalone --nproc_per_node=8 train.py config/finetune_gpt2_xl_fsdp.py
#   python sample.py --out_dir=out-shakespeare-xl-fsdp --start="ROMEO:"   # ckpt.pt, as any run's

out_dir = "out-shakespeare-xl-fsdp"
init_from = "gpt2-xl"  # every rank reads the weights into host memory (6 GB each); rank 0's fill the shards
dataset = "shakespeare"
fsdp = True
eval_interval = 5
eval_iters = 40  # a multiple of the 8 ranks: under FSDP every rank scores as many batches
always_save_checkpoint = False  # save only when val loss improves: it overfits within tens of steps

# 4 sequences x 1024 tokens x 8 micro-steps (1 per GPU) = 32,768 tokens per step, as
# config/finetune_shakespeare.py on one GPU; the 20 steps read about 2 epochs of the training tokens
batch_size = 4
gradient_accumulation_steps = 8
max_iters = 20

learning_rate = 3e-5  # finetuning: small and constant
decay_lr = False
dropout = 0.1
compile = True
