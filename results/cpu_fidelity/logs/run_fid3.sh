#!/bin/bash
# fidelity comparisons at n = 256, at 7935083 (after run_fid2.sh)
set -x
cd /work/study_seeds
export PYTHONPATH=/work/study_seeds OMP_NUM_THREADS=1 PY=/work/main/.venv/bin/python
J="hydra/launcher=joblib hydra.launcher.n_jobs=2"
F="experiment=cpu_size_attack paths.root=outputs/cpu_fidelity paths.models=outputs/cpu_size model=dcgan,wgangp"
date; echo START
$PY attack.py -m $F data.train_size=256 setting=whitebox calibration=none setting.init=nn,zero setting.max_iter=100,1000 $J > logs/fid_budget256.log 2>&1
date; echo FID_BUDGET256_DONE
$PY attack.py -m $F data.train_size=256 setting=fullbb,partialbb calibration=reference calibration.reference_attack=setting $J > logs/fid_refattack256.log 2>&1
date; echo FID_REFATTACK256_DONE
