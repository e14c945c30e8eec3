#!/bin/bash
# fidelity comparisons, the rest of run_fid.sh without its n=256 budget jobs (the session's time), at 7935083
set -x
cd /work/study_seeds
export PYTHONPATH=/work/study_seeds OMP_NUM_THREADS=1 PY=/work/main/.venv/bin/python
J="hydra/launcher=joblib hydra.launcher.n_jobs=2"
F="experiment=cpu_size_attack paths.root=outputs/cpu_fidelity paths.models=outputs/cpu_size model=dcgan,wgangp"
while kill -0 12753 2>/dev/null; do sleep 5; done   # the distance=paper jobs, started by run_fid.sh
date; echo FID_PAPER_DONE
$PY attack.py -m $F data.train_size=64 setting=fullbb,partialbb calibration=reference calibration.reference_attack=setting $J > logs/fid_refattack.log 2>&1
date; echo FID_REFATTACK_DONE
$PY attack.py -m $F data.train_size=64 setting=whitebox calibration=none setting.init=nn,zero setting.max_iter=30,100,1000 $J > logs/fid_budget64.log 2>&1
date; echo FID_BUDGET64_DONE
