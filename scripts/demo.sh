#!/usr/bin/env bash
# The main job, end to end, on the data in $KELM_DATA (default ../shared/data):
# build the CN-100K and WordNet graph indices and print their summaries.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA="${KELM_DATA:-../shared/data}"
OUT="${KELM_GRAPHS:-graphs}"
if [ ! -d "$DATA" ]; then
  echo "error: data directory $DATA not found (set KELM_DATA, or run: kelm data download NAME)" >&2
  exit 2
fi

echo "== building the CN-100K index"
kelm graph build --format cn100k "$DATA/kg/conceptnet100k/train.txt" --out "$OUT/cn100k"
kelm graph info "$OUT/cn100k"

echo "== building the WordNet 3.0 index"
kelm graph build --format wordnet "$DATA/kg/wordnet_nltk" --out "$OUT/wordnet"
kelm graph info "$OUT/wordnet"
