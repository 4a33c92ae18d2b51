#!/usr/bin/env bash
# The full-data speedrun of YourCodeNet on a 2-core CPU (the experiments chapter's
# last section), from the repository root:
#   bash tools/speedrun.sh tune    # the choices, on 45,000 training / 5,000 validation images
#   bash tools/speedrun.sh final   # the run: all 50,000 training images, 10,000 test images
# Each step is a sweep: it skips a finished run and resumes an interrupted one.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
case "${1:-}" in
  tune)
    # Six epochs each, scored on 5,000 validation images held out of the training
    # set (and 2,000 test images, only for the record): the learning rate.
    for lr in 0.4 0.2; do
      "$PY" -m hw2.experiments sweep speedrun --protocol speedrun \
          --set val_size=5000 test_size=2000 epochs=6 lr=$lr \
          -o "results/speedrun/tuning/lr$lr"
    done ;;
  final)
    "$PY" -m hw2.experiments sweep speedrun --protocol speedrun ;;
  *) echo "usage: $0 tune|final" >&2; exit 2 ;;
esac
