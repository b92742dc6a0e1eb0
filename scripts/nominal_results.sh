#!/usr/bin/env bash
# docs/nominal-results.md, end to end: simulate, preprocess, train,
# evaluate (with errors per simulated channel) and compare. Seeds are fixed throughout.
#
#   scripts/nominal_results.sh [OUT]      # default OUT=results_nominal; `make results`
#
# About 2 h 15 min on 2 CPU cores (simulation ~15 min, the three trainings ~13, ~45 and
# ~60 min). Every step is skipped when its output exists, so a killed run goes on where it
# stopped (simulate and preprocess also resume within a step).
set -euo pipefail

OUT=${1:-results_nominal}
A=${ATTPC_CLASSIFY:-.venv/bin/attpc-classify}
W=${WORKERS:-2}
mkdir -p "$OUT/data" "$OUT/runs"

# 1. Simulation, preset e15503b_nominal. Seed 0: runs 0-199; the last 40 files (4,000
#    events) are the test set, never trained on. Seed 1: runs 200-399, training only.
$A simulate --config e15503b_nominal --events 20000 --seed 0 --workers "$W" \
    --out "$OUT/sim" --resume --quiet
$A simulate --config e15503b_nominal --events 20000 --seed 1 --first-run 200 --workers "$W" \
    --out "$OUT/sim_extra" --resume --quiet

# 2. Images: all three views at 64 x 64 and at 128 x 128.
train16k=("$OUT"/sim/run_0{000..159}.h5)
test4k=("$OUT"/sim/run_0{160..199}.h5)
prep() {  # prep CONFIG OUT INPUT...
    local config=$1 out=$2
    shift 2
    [ -e "$out" ] || $A preprocess "$@" --config "$config" --out "$out" --workers "$W" --quiet
}
prep configs/prep/three_views.yaml "$OUT/data/train16k_64.h5" "${train16k[@]}"
prep configs/prep/three_views.yaml "$OUT/data/test_64.h5" "${test4k[@]}"
prep configs/prep/three_views128.yaml "$OUT/data/train16k_128.h5" "${train16k[@]}"
prep configs/prep/three_views128.yaml "$OUT/data/train36k_128.h5" "${train16k[@]}" "$OUT/sim_extra"
prep configs/prep/three_views128.yaml "$OUT/data/test_128.h5" "${test4k[@]}"

# 3. Training (3-class; each run is also scored proton vs rest).
train() {  # train RUN DATA CONFIG [key=value ...]
    local run=$1 data=$2 config=$3
    shift 3
    [ -e "$OUT/runs/$run/model.json" ] ||
        $A train --config "$config" --data "$data" --task multiclass --out "$OUT/runs/$run" \
            --quiet seed=0 "$@"
}
# the small CNN of configs/train/cnn_small.yaml at 64 x 64, 20 epochs
train cnn_small_64_16k "$OUT/data/train16k_64.h5" configs/train/cnn_small.yaml optim.epochs=20
# the cnn128 architecture on the same 16,000 events, 20 epochs, argmax decision
train cnn128_16k "$OUT/data/train16k_128.h5" configs/train/cnn_small.yaml \
    model.width=16 model.depth=4 model.global_pool=catavgmax optim.epochs=20
# the same run with the proton threshold chosen on its validation split (no training:
# --resume of a finished run only adds the threshold)
if [ ! -e "$OUT/runs/cnn128_16k_threshold/model.json" ]; then
    rm -rf "$OUT/runs/cnn128_16k_threshold"
    cp -r "$OUT/runs/cnn128_16k" "$OUT/runs/cnn128_16k_threshold"
    rm -rf "$OUT/runs/cnn128_16k_threshold/eval"
    $A train --resume "$OUT/runs/cnn128_16k_threshold" proton_threshold=val_f1 --quiet
fi
# the best model: configs/train/cnn128.yaml on 36,000 events (15 epochs, proton threshold)
train cnn128_36k "$OUT/data/train36k_128.h5" configs/train/cnn128.yaml

# 4. Evaluation on the 4,000 test events, errors per simulated channel, comparison.
for run in cnn_small_64_16k cnn128_16k cnn128_16k_threshold cnn128_36k; do
    case $run in *_64_*) test=$OUT/data/test_64.h5 ;; *) test=$OUT/data/test_128.h5 ;; esac
    $A evaluate "$OUT/runs/$run" --data "$test" --sim "${test4k[@]}" --n-boot 1000 --seed 0 \
        --out "$OUT/runs/$run/eval/test" --quiet
done
$A compare "$OUT"/runs/cnn_small_64_16k "$OUT"/runs/cnn128_16k "$OUT"/runs/cnn128_16k_threshold \
    "$OUT"/runs/cnn128_36k --out "$OUT/compare" --title "nominal simulation: 4,000 test events"
echo "results: $OUT/compare/compare.md"
