#!/usr/bin/env bash
# The committed CPU results set for the embedded model (issue: first measured results):
# every variant of data/recipes/all-methods.yaml on the full ARC-Challenge, WinoGrande,
# TruthfulQA-MC2 and WikiText-2 test sets, the token perplexity at 2048 tokens, and
# HellaSwag (llama.cpp's text) on its first 1000 validation items.
#
# Hours of work on two cores (about 75 minutes a variant: ARC 7, TruthfulQA 6, HellaSwag 5, WinoGrande 11,
# and the two WikiText perplexities at 2048 tokens most of the rest), so it runs one variant at a
# time and can be stopped at any point: every finished task is cached (KOMPAKT_CACHE),
# so running this script again resumes where it stopped, and each variant's results
# file is written whole when its last task is done. Variants are taken in the order
# below (the thesis' set first). Usage:
#
#   nohup scripts/measure-cpu-set.sh > build/measure-cpu-set.log 2>&1 &
#   THREADS=1 VARIANTS="reference awq4" scripts/measure-cpu-set.sh
#
# PAIRED=1 measures, for the paired figures and the KL divergence, only the four multiple-choice tasks
# (each result with its per-sample file) and the KL slice; the WikiText perplexities stay those of the
# committed files. A variant whose newest results file already has them is skipped
# (scripts/paired-table.py --has-paired). The reference goes first: it caches its distributions for the KL.
#
#   PAIRED=1 nohup scripts/measure-cpu-set.sh > build/measure-paired.log 2>&1 &
set -uo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
THREADS="${THREADS:-2}"
VARIANTS="${VARIANTS:-reference awq4 prune-8 prune-8-lora rtn4 gptq4 bnb-nf4 rtn8 bnb-int8 prune-explicit-4 prune-8-qlora prune-8-distill gguf-q8_0 gguf-q4_k_m prune-8-lora-gguf-q4_k_m rtn4-gguf awq4-gguf gptq4-gguf rtn8-gguf}"
GERMAN="${GERMAN:-}"
TASKS=(); FULL=()
if [ -n "$GERMAN" ]; then TASKS=(--tasks english,german); FULL=(--german); fi

PAIRED="${PAIRED:-0}"
TASKS=()
if [[ "$PAIRED" == 1 ]]; then
    TASKS=(--tasks winogrande,arc_challenge,truthfulqa_mc2,hellaswag_llamacpp,wikitext2_kl)
fi

for v in $VARIANTS; do
    # a variant with a full results file (WinoGrande unlimited, token perplexity present; with PAIRED=1:
    # per-sample results and the KL) is done: the cache would make it instant, but a second identical
    # file is a duplicate run
    if [[ "$PAIRED" == 1 ]]; then
        check=(scripts/paired-table.py --has-paired "$v")
    else
        check=(scripts/quality-table.py --has-full "$v")
    fi
    if "$BIN/python" "${check[@]}"
    then
        echo "== $v: already measured"; continue
    fi
    echo "== $v: $(date -u +%FT%TZ)"
    "$BIN/kompakt" bench --recipe all-methods --variant "$v" --profile cpu "${TASKS[@]}" \
        --limit hellaswag_llamacpp=1000 --threads "$THREADS" || echo "== $v: exit $?"
done
echo "== done $(date -u +%FT%TZ)"
