#!/usr/bin/env bash
# The main job, end to end, on the data in $KELM_DATA (default ../shared/data):
# build the CN-100K and WordNet graph indices and print their summaries, then link a sentence to
# WordNet synsets by its context and one to CN-100K concepts,
# ground Balanced-COPA against CN-100K and retrieve subgraphs and paths for it, draw one
# statement, then train the plain LM, QA-GNN and ERNIE briefly on CommonsenseQA and compare
# them; show the graph models reading the graph on a knowledge-necessary task where the plain LM
# cannot; pretrain ERNIE (MLM + dEA) for a few steps on WordNet glosses linked to CN-100K and
# probe it; show ERNIE pretraining carrying facts only the graph holds (the knowledge probe);
# score COPA zero-shot with SmolLM2.
#
# Data: $KELM_DATA, else ../shared/data when it exists, else ./data. What the demo reads and is
# missing there is fetched first with `kelm data download` (checksum-verified, resumable; the
# files come from $KELM_DATA_MIRROR/<path> when that is set). `scripts/demo.sh --data-only`
# (`make demo-data`) stops after that step.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -n "${KELM_DATA:-}" ]; then
  DATA="$KELM_DATA"
elif [ -d ../shared/data ]; then
  DATA=../shared/data
else
  DATA=data
fi
OUT="${KELM_GRAPHS:-graphs}"

# dataset name -> the file or folder of it that the demo reads
declare -A NEEDS=(
  [cn100k]=kg/conceptnet100k/train.txt
  [wordnet]=kg/wordnet_nltk/corpora/wordnet/data.noun
  [copa]=qa/copa/balacopa-dev-all.xml
  [csqa]=qa/csqa/train_rand_split_v1.0.jsonl
)
MISSING=()
for name in cn100k wordnet copa csqa; do
  [ -e "$DATA/${NEEDS[$name]}" ] || MISSING+=("$name")
done
if [ ${#MISSING[@]} -gt 0 ]; then
  echo "== fetching ${MISSING[*]} into $DATA (kelm data download: checksum-verified, resumable)"
  if ! kelm data download "${MISSING[@]}" --data-dir "$DATA"; then
    echo "error: data directory $DATA lacks ${MISSING[*]} and the download failed" \
      "(offline? set KELM_DATA to a folder that has them, or run: kelm data download" \
      "${MISSING[*]} --data-dir $DATA)" >&2
    exit 2
  fi
fi
# The configs read ${KELM_DATA}; an absolute path keeps them right whatever the working folder.
KELM_DATA="$(cd "$DATA" && pwd)"
export KELM_DATA
DATA="$KELM_DATA"
if [ "${1:-}" = "--data-only" ]; then
  echo "data ready in $DATA"
  exit 0
fi

echo "== building the CN-100K index"
kelm graph build --format cn100k "$DATA/kg/conceptnet100k/train.txt" --out "$OUT/cn100k"
kelm graph info "$OUT/cn100k"

echo "== building the WordNet 3.0 index"
kelm graph build --format wordnet "$DATA/kg/wordnet_nltk" --out "$OUT/wordnet"
kelm graph info "$OUT/wordnet"

# Entity mode on WordNet reads the context: the tagger drops the candidates of another part of
# speech ("sat" is no Saturday) and MiniLM ranks the rest by their glosses against the sentence.
echo "== linking a sentence to WordNet synsets by their context (POS filter + MiniLM)"
kelm link --graph "$OUT/wordnet" --mode entity --pipeline en_core_web_sm \
  "We sat on the river bank. She poured lemonade from the glass pitcher."

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

echo "== drawing one statement's subgraph"
kelm show --graph "$OUT/cn100k" --question "Where would you put a dirty dish?" --choice "sink" \
  --out "$OUT/work/subgraph.png"

# A short training of the plain LM and of QA-GNN on a slice of CommonsenseQA (same backbone,
# data and seed), each evaluated on 200 held-out questions, then the comparison table. The full
# settings are in configs/ and scripts/bench_qa.py; this is a smoke run of the whole path.
SHORT=(--set epochs=1 --set data.max_train=300 --set data.max_eval=200 --set data.max_length=48
       --set graph.max_nodes=32 --set graph.scorer=none --set eval_every_epoch=false)
echo "== training the plain LM baseline (short run)"
kelm train --config configs/csqa-lm.yaml --set run_dir="$OUT/work/runs/lm" "${SHORT[@]}"
echo "== training QA-GNN (short run)"
kelm train --config configs/csqa-qagnn.yaml --set run_dir="$OUT/work/runs/qagnn" "${SHORT[@]}"
echo "== training ERNIE (short run)"
kelm train --config configs/csqa-ernie.yaml --set run_dir="$OUT/work/runs/ernie" "${SHORT[@]}"

# The knowledge-necessary task (kelm data synthetic): made-up words, so the text says nothing and
# only the graph answers (1-hop, 2,400 training and 600 test questions about unseen heads, 5
# choices). The text encoder stays frozen (its statement vectors are computed once), so these
# runs take about a minute each; the plain LM must stay near chance (0.20), the graph models
# should approach 1.0 (scripts/bench_knowledge.py: several seeds, 2 hops, every model).
echo "== the knowledge-necessary task: generate, index, train lm / gsc / qagnn"
kelm data synthetic --out "$OUT/work/knowledge" --hops 1 --seed 0
kelm graph build --format tsv "$OUT/work/knowledge/graph.tsv" --out "$OUT/work/knowledge/graph"
KNOW=(--set data.train="$OUT/work/knowledge/train.jsonl" --set data.eval="$OUT/work/knowledge/test.jsonl"
      --set graph.index="$OUT/work/knowledge/graph" --set graph.source=null --set graph.scorer=none
      --set data.max_length=24 --set epochs=3 --set optim.unfreeze_epoch=3 --set eval_every_epoch=false
      --set optim.optimizer=radam --set optim.gnn_lr=3e-3 --set model.gnn_dropout=0
      --set batch_size=8 --set optim.warmup_steps=45 --overwrite)
for model in lm gsc qagnn; do
  kelm train --config "configs/csqa-$model.yaml" --set run_dir="$OUT/work/runs/knowledge-$model" \
    "${KNOW[@]}"
done
echo "== knowledge-necessary task: comparison (chance 0.20)"
kelm compare "$OUT/work/runs/knowledge-lm" "$OUT/work/runs/knowledge-gsc" \
  "$OUT/work/runs/knowledge-qagnn"

# Knowledge-enhanced pretraining, a smoke run: 2,000 WordNet synsets, 20 steps, the probe on
# 500 CN-100K triples. configs/pretrain-ernie.yaml has the real settings.
echo "== pretraining ERNIE (short run) and probing it"
kelm pretrain --config configs/pretrain-ernie.yaml --run-dir "$OUT/work/runs/pretrain-ernie" \
  --overwrite --no-progress --set max_steps=20 --set eval_every=20 --set save_every=20 \
  --set corpus.max_documents=2000 --set data.max_eval_instances=200 --set probe.max_triples=500

# Does ERNIE pretraining carry graph knowledge into the encoder? A world of made-up words
# (kelm.pretraining.knowledge_probe): each probed head's use is in the graph and never in the
# text. ERNIE (MLM + dEA, TransE entity table) and the MLM-only control pretrain alike on its
# corpus (40 tails, 300 steps, side by side on one core each, about 7 min), then rank every tail
# for "a {head} is used for [MASK]"; the control must stay near chance. The measured setting
# (100 tails, 1,000 steps, two seeds) is `python scripts/bench_ernie_probe.py --seeds 0 1`.
echo "== ERNIE knowledge probe: facts only the graph holds (ERNIE vs the MLM control)"
python scripts/bench_ernie_probe.py --tails 40 --steps 300 --lr 1e-3 --knowledge-lr 1e-2 \
  --jobs 2 --work "$OUT/work/ernie-probe" > "$OUT/work/ernie-probe.json"

echo "== zero-shot COPA with SmolLM2-135M (100 items)"
kelm evaluate --zero-shot --qa "$DATA/qa/copa/balacopa-dev-all.xml" --max-questions 100 \
  --out "$OUT/work/runs/copa-zero-shot"

echo "== comparison"
kelm compare "$OUT/work/runs/lm" "$OUT/work/runs/qagnn" "$OUT/work/runs/ernie" \
  "$OUT/work/runs/copa-zero-shot"

# What the models saw, in the browser: `kelm explore` serves a local page (127.0.0.1) with the
# linked spans, each choice's subgraph and paths, and each run's scores and attention. The
# CommonsenseQA runs read CN-100K (the index above has the same content); the knowledge-task
# runs read their own graph.
echo "== explore the results in a browser (Ctrl+C stops the page):"
echo "  kelm explore --graph $OUT/cn100k --model $OUT/work/runs/lm --model $OUT/work/runs/qagnn" \
  "--model $OUT/work/runs/ernie --lm default --qa $DATA/qa/csqa/train_rand_split_v1.0.jsonl"
echo "  kelm explore --graph $OUT/work/knowledge/graph --model $OUT/work/runs/knowledge-gsc" \
  "--model $OUT/work/runs/knowledge-qagnn --qa $OUT/work/knowledge/test.jsonl"
