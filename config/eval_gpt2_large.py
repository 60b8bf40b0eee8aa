# The loss of OpenAI's GPT-2 774M (gpt2-large) on OpenWebText, without training: a baseline
# for models trained with config/train_gpt2.py. Needs the weights from the Hugging Face Hub
# (or --init_from=hf:PATH for a local copy) and the prepared data.
#   python data/openwebtext/prepare.py && python train.py config/eval_gpt2_large.py

out_dir = "out-eval-gpt2-large"  # only config.json and log.jsonl: eval_only saves no checkpoint
init_from = "gpt2-large"
dataset = "openwebtext"
eval_only = True
eval_iters = 500  # 500 batches of 8 x 1024 tokens: about 4M tokens per split, for a steady estimate
batch_size = 8
wandb_log = False
