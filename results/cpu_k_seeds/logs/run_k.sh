#!/bin/bash
# cpu_k at seeds 1 and 2 (C6 over seeds), from /work/study_seeds at 7935083, one job at a time beside CI
set -x
cd /work/study_seeds
export PYTHONPATH=/work/study_seeds OMP_NUM_THREADS=1 PY=/work/main/.venv/bin/python
date; echo START
$PY attack.py -m experiment=cpu_k_attack seed=1,2 hydra/launcher=joblib hydra.launcher.n_jobs=1 > logs/k_seeds.log 2>&1
date; echo K_SEEDS_DONE
