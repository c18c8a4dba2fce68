#!/usr/bin/env bash
# The demo (`make demo`): measure the embedded SmolLM2-135M-Instruct and two of its compressed
# variants on a quick suite, then build the site with these results beside those in data/.
#
# Quick suite: the first 40 documents of each accuracy task, the first 2 WikiText-2 documents
# for lm-eval's word perplexity, 8 windows of the token perplexity and the KL slice (its 32
# windows). Every figure carries its limit, and the site marks it, so a demo run is never
# mistaken for a full one (nor does it displace a full run of the same variant on the site).
# About 10 to 15 minutes on two CPU cores, plus the first set-up; a second run reuses the built
# variants and every finished measurement.
#
# Results go to build/demo/results (a copy of data/results plus the demo's own files), so the
# working tree's data/ is left as it was. Set DEMO_VARIANTS to measure others (ids of
# data/recipes/all-methods.yaml), e.g. DEMO_VARIANTS=reference,awq4 make demo.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup-env.sh
scripts/setup-frontend.sh
BIN=.venv/bin
OUT=build/demo
VARIANTS="${DEMO_VARIANTS:-reference,rtn4,prune-8}"

# The demo runs offline: evaluation data and calibration text come from the shared folder beside the
# repository (../shared), or from KOMPAKT_DATA_DIR / KOMPAKT_CORPORA (or KOMPAKT_SHARED for both).
DATA=$("$BIN/python" -c 'from kompakt import paths; print(paths.benchmarks_dir())')
CORPORA=$("$BIN/python" -c 'from kompakt import paths; print(paths.corpora_dir())')
if [[ ! -f "$DATA/arc_challenge/test.jsonl" || ! -d "$CORPORA/calib" ]]; then
    echo "demo: the evaluation data ($DATA) or the calibration text ($CORPORA) is not there." >&2
    echo "      Point KOMPAKT_SHARED at the folder holding benchmarks/ and corpora/ (or set KOMPAKT_DATA_DIR" >&2
    echo "      and KOMPAKT_CORPORA), e.g.: KOMPAKT_SHARED=/path/to/shared make demo" >&2
    exit 2
fi

mkdir -p "$OUT"
rm -rf "$OUT/results.new"
cp -r data/results "$OUT/results.new"
# keep the demo's own earlier results files and their per-sample files (run ids not in data/)
if [[ -d "$OUT/results" ]]; then
    (cd "$OUT/results" && find . \( -name '*.json' -o -name '*.samples.parquet' \) -print0) | while IFS= read -r -d '' f; do
        [[ -e "$OUT/results.new/$f" ]] || { mkdir -p "$(dirname "$OUT/results.new/$f")"; cp "$OUT/results/$f" "$OUT/results.new/$f"; }
    done
fi
rm -rf "$OUT/results" && mv "$OUT/results.new" "$OUT/results"

"$BIN/kompakt" bench --recipe all-methods --variant "$VARIANTS" \
    --limit 40 --limit wikitext=2 --limit wikitext2_tokens=8 \
    --results-dir "$OUT/results"
"$BIN/kompakt" build --results-dir "$OUT/results" --out build/site
echo
echo "Site with the demo's measurements beside the thesis results: open build/site/index.html,"
echo "or serve it: .venv/bin/kompakt serve   (http://127.0.0.1:8000/)"
