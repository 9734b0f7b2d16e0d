#!/usr/bin/env bash
# compute_ceiling_torch.py on a GPU machine that has PyTorch but not TensorFlow (and no network):
# generates the training set (2400 studies, seed 1, 256 px) and the demo's test set (100 studies,
# seed 2, 512 px), prepares both with ich-edge, then runs the configurations of RUNS_JSON.
#
#   bash benchmarks/compute_ceiling_gpu.sh SPLIT_JSON RUNS_JSON OUT_DIR
#
# SPLIT_JSON: the split.json of an `ich-edge train` run on the first 1200 of those studies
# (its validation studies are held out of every run). Needs the pydicom wheel in
# $WHEELS (default .devcarry/wheels) where pydicom is not installed.
set -euo pipefail
SPLIT=$1 RUNS=$2 OUT=$3
WORK=${WORK:-/tmp/ich-edge-ceiling}
START=$(date +%s)
python3 -c "import pydicom" 2>/dev/null || python3 -m pip install --no-deps --no-index -q "${WHEELS:-.devcarry/wheels}"/pydicom*.whl
export PYTHONPATH=$PWD
python3 -m ich_edge synth --out "$WORK/train" --studies 2400 --seed 1 --matrix-px 256 --workers "$(nproc)" | tail -1
python3 -m ich_edge synth --out "$WORK/test" --studies 100 --seed 2 --workers "$(nproc)" | tail -1
python3 -m ich_edge prepare --dicom "$WORK/train/dicom" --labels-csv "$WORK/train/labels.csv" --out "$WORK/cache_train" --workers "$(nproc)" | tail -1
python3 -m ich_edge prepare --dicom "$WORK/test/dicom" --labels-csv "$WORK/test/labels.csv" --out "$WORK/cache_test" --workers "$(nproc)" | tail -1
echo "data ready after $(( $(date +%s) - START )) s"
# No run starts after 420 s from START, so the whole call fits a 10-minute device command.
python3 benchmarks/compute_ceiling_torch.py "$WORK/cache_train" "$WORK/cache_test" "$SPLIT" "$RUNS" \
    "$WORK/train/synth_config.json" $(( 420 - ($(date +%s) - START) )) "$OUT/ceiling.json" | tee "$OUT/ceiling.log"
