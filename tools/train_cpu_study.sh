#!/usr/bin/env bash
# Train the whole replicated CPU study into results/cpu/, resuming wherever it stopped.
#   nohup bash tools/train_cpu_study.sh > study.log 2>&1 &
# 1. the numerics check (float32, 4 networks x 3 seeds); 2. the study and its two
# controls, seed by seed (42, 43, 44); 3. the budget check (15 epochs, one seed).
# Each sweep skips finished runs and resumes an interrupted one from its checkpoint.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
"$PY" -m hw2.experiments sweep float32 --protocol cpu
"$PY" -m hw2.experiments sweep exp1_1 exp1_2 exp1_3 exp1_4 exp2 exp2_common exp1_recipe2 \
    --protocol cpu
"$PY" -m hw2.experiments sweep epochs15 --protocol cpu
