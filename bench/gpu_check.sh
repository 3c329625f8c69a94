#!/bin/bash
# GPU training-throughput check: the notebook recipe and the fm5 recipe's variants, one process each, each under
# its own time limit, so that one slow compile or failure leaves the other numbers. Prints one line per variant.
#
#   bash bench/gpu_check.sh QA_FILE [TOKENIZER_DIR]      # e.g. ../shared/fm5/qa_pairs.jsonl
#
# Needs torch (CUDA), transformers, trl, peft, datasets. On a machine without them, put their wheels in .whl/
# (python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 ... -d .whl trl==1.16.0
# datasets==5.2.0 dill multiprocess transformers==5.24.0 peft==0.21.2); they are installed into /tmp/site first.
# TOKENIZER_DIR defaults to the packaged SmolLM2 tokenizer (the rows only need some tokenizer; the model is the
# Llama-3.2-1B shape with random weights).
set -u
DATA=$1 TOK=${2:-}
START=$SECONDS DEADLINE=${DEADLINE:-900}
if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site:$PWD
fi
export HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
B=(python3 bench/train_throughput.py --data "$DATA" --model llama-1b-random --rows 256 --steps 30 --warmup 5)
[ -n "$TOK" ] && B+=(--tokenizer "$TOK")
variant() {  # variant SECONDS ARGS...
  local limit=$1; shift
  if (( SECONDS - START + limit > DEADLINE )); then echo "skipped (time left): $*"; return; fi
  local log; log=$(mktemp)
  timeout "$limit" "${B[@]}" "$@" > "$log" 2>&1
  case $? in
    0) grep -E "^device|recipe \(" "$log" | tail -2 ;;
    124) echo "timed out after ${limit}s: $*" ;;
    *) echo "failed: $*"; grep -v -i warn "$log" | tail -3 ;;
  esac
  rm -f "$log"
}
variant 120 --only notebook
variant 90 --only fm5
variant 90 --only fm5 --no_cudnn_sdpa
variant 90 --only fm5 --pad_to_multiple_of 64
variant 90 --only fm5 --batch 32 --no_cudnn_sdpa
variant 150 --only fm5 --padding_free --attn flex_attention
echo "total $(( SECONDS - START )) s"
