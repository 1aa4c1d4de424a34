#!/usr/bin/env bash
# Rebuild the demo model resources/demo/demo_model.{safetensors,json} with the real CLI:
# the tiny preset trained on synthetic DEAP-layout data (6 subjects, seed 1), trial-wise
# 4-fold; the fold with the best validation accuracy is exported. Then checks it on the
# app's demo subject (milmer_app.demo.DEMO_DATA: another seed, never seen in training).
#
# Usage, from the repository root:  resources/demo/build_demo_model.sh [WORK_DIR]
# About 5 minutes on 2 CPU cores. PYTHON selects the interpreter (default .venv/bin/python).
set -euo pipefail
cd "$(dirname "$0")/../.."
PYTHON=${PYTHON:-.venv/bin/python}
WORK=${1:-$(mktemp -d -t milmer-demo-XXXXXX)}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
train() { "$PYTHON" -m training.cli "$@"; }

train synth --out "$WORK/train_data" --subjects 6 --trials 8 --seconds 30 --strength 1.0 --seed 1
train train --deap "$WORK/train_data" --cache "$WORK/cache" --protocol trial --folds 4 --preset tiny \
    --epochs 20 --lr 2e-3 --batch-size 14 --seed 0 --device cpu --out "$WORK/run" \
    --export-best resources/demo/demo_model \
    --export-provenance '{"dataset": "synthetic", "demo": true,
        "synthetic_data": {"subjects": 6, "trials": 8, "seconds": 30, "strength": 1.0, "seed": 1},
        "built_by": "resources/demo/build_demo_model.sh",
        "note": "trained on synthetic data only: its predictions say nothing about real emotions"}'

# The app's demo subject (same settings as milmer_app/demo.py DEMO_DATA).
train synth --out "$WORK/demo_subject" --subjects 1 --trials 8 --seconds 12 --strength 1.0 --seed 20260
# --all-windows: this data is not the training data, so every window counts.
train evaluate --checkpoint resources/demo/demo_model --deap "$WORK/demo_subject" --cache "$WORK/cache" --device cpu --all-windows
echo "work files (data, cache, run directory) are in $WORK"
