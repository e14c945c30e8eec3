#!/bin/bash
# fidelity comparisons (reduced to fit the session), from /work/study_seeds at commit 7935083, after seed 2
set -x
cd /work/study_seeds
export PYTHONPATH=/work/study_seeds OMP_NUM_THREADS=1 PY=/work/main/.venv/bin/python
J="hydra/launcher=joblib hydra.launcher.n_jobs=2"
F="experiment=cpu_size_attack paths.root=outputs/cpu_fidelity paths.models=outputs/cpu_size model=dcgan,wgangp"
while kill -0 11467 2>/dev/null; do sleep 5; done   # seed 2's attacks, started by run_seeds2.sh
date; echo SEED2_DONE
$PY attack.py -m $F data.train_size=64 setting=whitebox calibration=none distance=paper $J > logs/fid_paper.log 2>&1
date; echo FID_PAPER_DONE
$PY attack.py -m $F data.train_size=64 setting=fullbb,partialbb calibration=reference calibration.reference_attack=setting $J > logs/fid_refattack.log 2>&1
date; echo FID_REFATTACK_DONE
$PY attack.py -m $F data.train_size=64 setting=whitebox calibration=none setting.init=nn,zero setting.max_iter=30,100,1000 $J > logs/fid_budget64.log 2>&1
date; echo FID_BUDGET64_DONE
$PY attack.py -m $F data.train_size=256 setting=whitebox calibration=none setting.init=nn,zero setting.max_iter=1000 $J > logs/fid_budget256.log 2>&1
date; echo FID_BUDGET256_DONE
