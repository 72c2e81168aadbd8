#!/usr/bin/env bash
# The main job, end to end, on the data in $KELM_DATA (default ../shared/data):
# build the CN-100K and WordNet graph indices and print their summaries, then link a sentence,
# ground Balanced-COPA against CN-100K and retrieve subgraphs and paths for it.
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

echo "== linking a sentence to CN-100K concepts"
kelm link --graph "$OUT/cn100k" "The lazy dog is sleeping on the sofa in the living room."

echo "== grounding Balanced-COPA dev (question and answer concepts of every statement)"
mkdir -p "$OUT/work"
kelm ground --graph "$OUT/cn100k" --qa "$DATA/qa/copa/balacopa-dev-all.xml" \
  --out "$OUT/work/copa.grounded.jsonl"
head -c 400 "$OUT/work/copa.grounded.jsonl"; echo

echo "== retrieving subgraphs and question-answer paths (MiniLM relevance scores, cached)"
kelm retrieve --graph "$OUT/cn100k" --grounded "$OUT/work/copa.grounded.jsonl" \
  --out "$OUT/work/copa.retrieved"
