#!/usr/bin/env bash
# The GPU paths that no CPU test can run, checked on one CUDA GPU in a few minutes, as one table:
#   1. GPT-2 124M's shape in bf16, compiled, with flash attention: ms/iter, tokens/s, MFU;
#   2. fp16 with a GradScaler for 20 steps, resumed from a bf16 checkpoint;
#   3. sampling with the KV cache at batch 1 and 8 (and without it, for the speedup), with the
#      weights this device runs quantized (quantize.py: int8, bf16), and whether the compiled
#      decoding step (mode='reduce-overhead') replays CUDA graphs or inductor skips them;
#   4. train 50 steps, save, resume, sample: the round trip, beside the same run without the stop;
#   5. FSDP (--fsdp=True) under torchrun on this one GPU in bf16: train, save ckpt.pt, sample; and
#      bench.py's memory per rank under FSDP (the dry run: 2 gloo processes on the CPU, fp32).
#
#   bench/gpu_check.sh              # on a machine with a CUDA GPU (python: $PYTHON, else python)
#   bench/gpu_check.sh --dry_run    # the same steps on the CPU at a tiny size (the tests run this)
#
# Data: a character-level corpus made from Python's own documentation, so it needs no download.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python}"

if [[ "${1:-}" == "--dry_run" ]]; then
  DEV=cpu; COMPILE=False; STEPS=2; WARMUP=1; TOKENS=8; ROUND=4; RESUME=2; VOCAB=256; SHAPE="a tiny stand-in for GPT-2's"
  NPROC=2; FSDP_DTYPE=float32
  GPT2=(--n_layer=1 --n_head=2 --n_embd=32 --block_size=32 --batch_size=2)
  SMALL=(--n_layer=1 --n_head=2 --n_embd=32 --block_size=32 --batch_size=4)
elif [[ -z "${1:-}" ]]; then
  DEV=cuda; COMPILE=True; STEPS=20; WARMUP=5; TOKENS=500; ROUND=50; RESUME=20; VOCAB=50257; SHAPE="GPT-2 124M's"
  NPROC=1; FSDP_DTYPE=bfloat16
  GPT2=(--n_layer=12 --n_head=12 --n_embd=768 --block_size=1024 --batch_size=12)
  SMALL=(--n_layer=6 --n_head=6 --n_embd=384 --block_size=256 --batch_size=32)
else
  echo "error: unknown argument '$1'; run bench/gpu_check.sh or bench/gpu_check.sh --dry_run" >&2
  exit 2
fi
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
ROWS=()
row() { ROWS+=("| $1 | $2 |"); }
val_loss() { grep -E '^step' "$1" | tail -1 | grep -oE 'val loss [0-9.]+' | cut -d' ' -f3; }
last() { grep -E "$1" "$2" | tail -1 || true; }  # the last line of a log that matches (none: empty)

# the corpus: ~465k characters of Python's reference documentation
"$PY" - "$WORK/data" > /dev/null <<'EOF'
import sys
from pydoc_data.topics import topics
from data.writer import write_char_dataset
write_char_dataset(sys.argv[1], "\n\n".join(topics[k] for k in sorted(topics)), source="pydoc_data.topics")
EOF
COMMON=(--data_dir="$WORK/data" --device="$DEV" --eval_iters=4 --log_interval=1 --gradient_accumulation_steps=1)

# 1. GPT-2 124M's shape: does our model run on the flash kernel (forward and backward), and how fast
"$PY" - "$DEV" "$VOCAB" "${GPT2[@]}" <<'EOF' > "$WORK/flash.txt" 2>&1 || true
import sys
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from model import GPT, GPTConfig
dev, vocab, kw = sys.argv[1], int(sys.argv[2]), dict(a[2:].split("=") for a in sys.argv[3:])
cfg = GPTConfig(n_layer=int(kw["n_layer"]), n_head=int(kw["n_head"]), n_embd=int(kw["n_embd"]),
                block_size=int(kw["block_size"]), vocab_size=vocab, pad_vocab=True)
model = GPT(cfg).to(dev)
x = torch.randint(0, vocab, (2, cfg.block_size), device=dev)
with sdpa_kernel([SDPBackend.FLASH_ATTENTION]), torch.autocast(dev, dtype=torch.bfloat16):
    _, loss = model(x, x)
loss.backward()
print(f"flash attention: forward and backward ran, loss {loss.item():.3f}")
EOF
row "flash attention, $SHAPE shape, bf16" "$(last 'flash attention|Error' "$WORK/flash.txt")"
"$PY" bench.py --real_data=False --device="$DEV" --dtype=bfloat16 --compile="$COMPILE" "${GPT2[@]}" --vocab_size="$VOCAB" \
  --gradient_accumulation_steps=1 --num_steps="$STEPS" --warmup_steps="$WARMUP" > "$WORK/bench.txt" 2>&1 || true
row "training step, $SHAPE shape, bf16, compile=$COMPILE" \
  "$(last 'median|Error' "$WORK/bench.txt" | sed -E 's/ \(p10[^)]*\)//'); $(last 'memory' "$WORK/bench.txt" | sed 's/memory: //')"

# 2. fp16 + GradScaler, resumed from a bf16 checkpoint (whose scaler state is empty)
"$PY" train.py "${COMMON[@]}" "${SMALL[@]}" --out_dir="$WORK/mixed" --dtype=bfloat16 --max_iters="$RESUME" \
  --eval_interval="$RESUME" --warmup_iters=2 --lr_decay_iters=$((2 * RESUME)) > "$WORK/bf16.txt" 2>&1 || true
"$PY" train.py --init_from=resume --out_dir="$WORK/mixed" --dtype=float16 --max_iters=$((2 * RESUME)) \
  > "$WORK/fp16.txt" 2>&1 || true
if grep -q "^iter $((2 * RESUME)):" "$WORK/fp16.txt"; then
  row "fp16 + GradScaler, $RESUME steps resumed from bf16" \
    "val loss $(val_loss "$WORK/bf16.txt") at the bf16 checkpoint, $(val_loss "$WORK/fp16.txt") after the fp16 steps"
else
  row "fp16 + GradScaler, $RESUME steps resumed from bf16" "FAILED: $(last 'error|Error' "$WORK/fp16.txt")"
fi

# 3. sampling speed with the KV cache, in each weight format this device runs
"$PY" bench.py --mode=sample --device="$DEV" --compile=False "${SMALL[@]}" --vocab_size="$VOCAB" --real_data=False \
  --sample_tokens="$TOKENS" --sample_batches="(1, 8)" > "$WORK/sample.txt" 2>&1 || true
cell() { grep -E "^\| $1 \| $2 \| $3 " "$WORK/sample.txt" | cut -d'|' -f"$4" | xargs || true; }  # batch, weights, cache, column
for b in 1 8; do
  on=$(cell "$b" none on 6); off=$(cell "$b" none off 6); speedup=$(cell "$b" none off 11); quantized=""
  for fmt in int8 bf16; do
    if [[ -n "$(cell "$b" "$fmt" on 6)" ]]; then quantized="$quantized; $fmt weights $(cell "$b" "$fmt" on 6)"; fi
  done
  row "sampling $TOKENS tokens, batch $b ($(head -1 "$WORK/sample.txt" | cut -d, -f1))" \
    "${on:-FAILED: $(last 'error|Error' "$WORK/sample.txt")} tokens/s with the cache, ${off:-?} without ($speedup)$quantized"
done

# 3b. compiled decoding: inductor says why it skips CUDA graphs (torch 2.13 logs it as "cudagraphs", older
# versions as "perf_hints"); the dry run compiles nothing
TORCH_LOGS=perf_hints,cudagraphs "$PY" bench.py --mode=sample --device="$DEV" --compile="$COMPILE" "${SMALL[@]}" \
  --vocab_size="$VOCAB" --real_data=False --sample_tokens="$TOKENS" --sample_batches="(1,)" > "$WORK/graphs.txt" 2>&1 || true
speed=$(grep -E "^\| 1 \| none \| on " "$WORK/graphs.txt" | cut -d'|' -f6 | xargs || true)
if [[ -z "$speed" ]]; then
  graphs="FAILED: $(last 'error|Error' "$WORK/graphs.txt")"
elif grep -q "skipping cudagraphs" "$WORK/graphs.txt"; then
  graphs="$speed tokens/s; FAILED: $(grep -m1 -o 'skipping cudagraphs.*' "$WORK/graphs.txt")"
elif [[ "$COMPILE" == True ]]; then
  graphs="$speed tokens/s; CUDA graphs replayed (no skip logged)"
else
  graphs="$speed tokens/s, not compiled (dry run)"
fi
row "compiled decoding with CUDA graphs, batch 1" "$graphs"

# 4. train, save, resume, sample; and the same run without the stop
"$PY" train.py "${COMMON[@]}" "${SMALL[@]}" --out_dir="$WORK/straight" --max_iters="$ROUND" \
  --eval_interval=$((ROUND / 2)) --warmup_iters=2 --lr_decay_iters="$ROUND" > "$WORK/straight.txt" 2>&1 || true
"$PY" train.py "${COMMON[@]}" "${SMALL[@]}" --out_dir="$WORK/round" --max_iters=$((ROUND / 2)) \
  --eval_interval=$((ROUND / 2)) --warmup_iters=2 --lr_decay_iters="$ROUND" > "$WORK/half.txt" 2>&1 || true
"$PY" train.py --init_from=resume --out_dir="$WORK/round" --max_iters="$ROUND" > "$WORK/resumed.txt" 2>&1 || true
"$PY" sample.py --out_dir="$WORK/round" --num_samples=1 --max_new_tokens=40 --device="$DEV" \
  > "$WORK/text.txt" 2>&1 || true
if grep -q "^step $ROUND:" "$WORK/resumed.txt" && grep -q -- "---------------" "$WORK/text.txt"; then
  row "train $((ROUND / 2)) + resume to $ROUND, then sample" \
    "val loss $(val_loss "$WORK/resumed.txt") (without the stop: $(val_loss "$WORK/straight.txt")); sample.py wrote $(wc -m < "$WORK/text.txt") characters"
else
  row "train $((ROUND / 2)) + resume to $ROUND, then sample" "FAILED: $(last 'error|Error' "$WORK/resumed.txt" "$WORK/text.txt" 2>/dev/null)"
fi

# 5. FSDP under torchrun: one GPU in bf16 (the dry run: 2 CPU processes, gloo, fp32)
TORCHRUN=("$PY" -m torch.distributed.run --standalone --nproc_per_node="$NPROC")
"${TORCHRUN[@]}" train.py "${COMMON[@]}" "${SMALL[@]}" --out_dir="$WORK/fsdp" --fsdp=True --dtype="$FSDP_DTYPE" \
  --gradient_accumulation_steps=2 --max_iters="$ROUND" --eval_interval="$ROUND" --warmup_iters=2 \
  --lr_decay_iters="$ROUND" > "$WORK/fsdp.txt" 2>&1 || true
"$PY" sample.py --out_dir="$WORK/fsdp" --num_samples=1 --max_new_tokens=40 --device="$DEV" > "$WORK/fsdp_text.txt" 2>&1 || true
if grep -q "^step $ROUND:" "$WORK/fsdp.txt" && grep -q -- "---------------" "$WORK/fsdp_text.txt"; then
  row "FSDP, $NPROC process(es), $FSDP_DTYPE: train $ROUND, save ckpt.pt, sample" \
    "val loss $(val_loss "$WORK/fsdp.txt"); sample.py wrote $(wc -m < "$WORK/fsdp_text.txt") characters"
else
  row "FSDP, $NPROC process(es), $FSDP_DTYPE: train $ROUND, save ckpt.pt, sample" \
    "FAILED: $(last 'error|Error' "$WORK/fsdp.txt" "$WORK/fsdp_text.txt" 2>/dev/null)"
fi
"${TORCHRUN[@]}" bench.py --real_data=False --device="$DEV" --dtype="$FSDP_DTYPE" --compile=False "${GPT2[@]}" \
  --vocab_size="$VOCAB" --gradient_accumulation_steps="$NPROC" --num_steps="$STEPS" --warmup_steps="$WARMUP" \
  --fsdp=True > "$WORK/fsdp_bench.txt" 2>&1 || true
row "FSDP memory, rank 0, $SHAPE shape, $FSDP_DTYPE" \
  "$(last 'memory, rank 0|Error' "$WORK/fsdp_bench.txt" | sed 's/memory, rank 0: //')"

"$PY" - "$DEV" <<'EOF'
import sys
import torch
name = torch.cuda.get_device_name() if sys.argv[1] == "cuda" else "CPU (dry run)"
print(f"gpu_check: {name}, torch {torch.__version__}, CUDA {torch.version.cuda}")
EOF
echo "| check | result |"
echo "|---|---|"
printf '%s\n' "${ROWS[@]}"
grep -q "FAILED" <<< "${ROWS[*]}" && exit 1 || exit 0
