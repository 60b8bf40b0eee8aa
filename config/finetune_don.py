# Finetune OpenAI's GPT-2 124M (gpt2) on Don Quixote (GPT-2 tokens): the recipe of
# config/finetune_shakespeare.py, a few iterations at a small constant learning rate, keeping
# the checkpoint with the best val loss. Never run from OpenAI's weights so far (docs/evaluation.md).
# One GPU, or slowly a CPU (--device=cpu); a bigger GPT-2: --init_from=gpt2-medium, -large, -xl.
#   python data/don/prepare.py && python train.py config/finetune_don.py
#   python sample.py --out_dir=out-don --start=FILE:prompt/don.txt
#   python evaluate.py --out_dir=out-don --task=bpb

out_dir = "out-don"
init_from = "gpt2"  # or 'gpt2-medium', 'gpt2-large', 'gpt2-xl', or 'hf:PATH' for a local copy
dataset = "don"
eval_interval = 5
eval_iters = 40
always_save_checkpoint = False  # save only when val loss improves: finetuning overfits within tens of steps
wandb_log = False
wandb_project = "don"
wandb_run_name = "ft-gpt2"

# 1 sequence x 1024 tokens x 32 micro-steps = 32,768 tokens per step; the 40 steps read
# 1.3M tokens, about 2.4 epochs of the 554k training tokens
batch_size = 1
gradient_accumulation_steps = 32
max_iters = 40

learning_rate = 3e-5  # finetuning: small and constant
decay_lr = False
