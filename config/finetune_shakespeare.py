# Finetune OpenAI's GPT-2 XL (1558M) on tiny Shakespeare (GPT-2 tokens), as nanoGPT does:
# a few iterations at a small constant learning rate, keeping the best checkpoint.
# One GPU with ~40 GB (fewer: --init_from=gpt2-medium or gpt2; a CPU: --init_from=gpt2 --device=cpu).
#   python data/shakespeare/prepare.py && python train.py config/finetune_shakespeare.py
#   python sample.py --out_dir=out-shakespeare --start="ROMEO:"

out_dir = "out-shakespeare"
init_from = "gpt2-xl"  # or 'gpt2', 'gpt2-medium', 'gpt2-large', or 'hf:PATH' for a local copy
dataset = "shakespeare"
eval_interval = 5
eval_iters = 40
always_save_checkpoint = False  # save only when val loss improves: it overfits within tens of steps
wandb_log = False
wandb_project = "shakespeare"
wandb_run_name = "ft-gpt2-xl"

# 1 sequence x 1024 tokens x 32 micro-steps = 32,768 tokens per step; the 20 steps read
# 655k tokens, about 2 epochs of the 302k training tokens
batch_size = 1
gradient_accumulation_steps = 32
max_iters = 20

learning_rate = 3e-5  # finetuning: small and constant
decay_lr = False
