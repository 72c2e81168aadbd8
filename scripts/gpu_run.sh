#!/usr/bin/env bash
# The CommonsenseQA comparison of scripts/bench_qa.py on a single-GPU machine without network
# and without spaCy, in two steps (details: python scripts/gpu_run.py --help):
#
#   scripts/gpu_run.sh pack [--pack build/gpu-pack] [--budget-mib 64] [bench_qa options]
#       here (spaCy, the bundled MiniLM): ground and retrieve the questions, write the pack
#       (default --full: all of CSQA train); prints its size, fails over the budget
#   bash scripts/gpu_run.sh run [--time-limit 9] [--allow-cpu] [bench_qa options]
#       there (torch, transformers, torch-geometric, accelerate), with build/gpu-pack carried:
#       trains 5 models x 3 seeds in bf16, prints bench_qa's JSON (also to $OUT/bench_qa_gpu.json)
#
# Python: $PYTHON, else the repository's .venv, else the first of python3 / python that has
# torch. The repository goes first on PYTHONPATH, so its kelm is the one imported (kelm need not
# be installed).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python="${PYTHON:-}"
if [[ -z "$python" && -x "$root/.venv/bin/python" ]]; then python="$root/.venv/bin/python"; fi
if [[ -z "$python" ]]; then
  for candidate in python3 python; do
    if command -v "$candidate" >/dev/null &&
      "$candidate" -c 'import importlib.util as u, sys; sys.exit(u.find_spec("torch") is None)'; then
      python="$candidate"
      break
    fi
  done
fi
if [[ -z "$python" ]]; then
  echo "error: no python with torch found (set PYTHON)" >&2
  exit 1
fi
export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
exec "$python" "$root/scripts/gpu_run.py" "$@"
