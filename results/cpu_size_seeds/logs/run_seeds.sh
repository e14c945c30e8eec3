#!/bin/bash
# cpu_size seeds 1 and 2 and the fidelity comparisons, from /work/study_seeds at commit 7935083
set -x
cd /work/study_seeds
export PYTHONPATH=/work/study_seeds OMP_NUM_THREADS=1 PY=/work/main/.venv/bin/python
J="hydra/launcher=joblib hydra.launcher.n_jobs=2"
F="experiment=cpu_size_attack paths.root=outputs/cpu_fidelity paths.models=outputs/cpu_size model=dcgan,wgangp data.train_size=64,256"
while pgrep -f run_c4c.sh > /dev/null; do sleep 10; done
date; echo START
$PY train.py -m experiment=cpu_size_train model=vaegan seed=2 $J > logs/train_vaegan_seed2.log 2>&1
$PY train.py -m experiment=cpu_size_reference model=vaegan seed=1,2 $J > logs/train_vaegan_ref.log 2>&1
date; echo TRAIN_DONE
$PY attack.py -m experiment=cpu_size_attack seed=1 $J > logs/attack_seed1.log 2>&1
date; echo SEED1_DONE
# fidelity (seed 0 victims of cpu_size, n = 64 and 256, dcgan and wgangp)
$PY attack.py -m $F setting=whitebox calibration=none,reference distance=paper $J > logs/fid_paper.log 2>&1
date; echo FID_PAPER_DONE
$PY attack.py -m $F setting=fullbb,partialbb calibration=reference calibration.reference_attack=setting $J > logs/fid_refattack.log 2>&1
date; echo FID_REFATTACK_DONE
$PY attack.py -m $F setting=whitebox calibration=none setting.init=nn,zero setting.max_iter=30,100,300,1000 $J > logs/fid_budget.log 2>&1
$PY attack.py -m $F setting=whitebox calibration=reference setting.init=zero setting.max_iter=1000 calibration.reference_setting.init=zero calibration.reference_setting.max_iter=1000 $J > logs/fid_budget_cal.log 2>&1
date; echo FID_BUDGET_DONE
$PY attack.py -m experiment=cpu_size_attack seed=2 $J > logs/attack_seed2.log 2>&1
date; echo SEED2_DONE
