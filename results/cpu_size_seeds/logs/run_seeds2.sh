#!/bin/bash
# cpu_size seeds 1 and 2, then the fidelity comparisons, from /work/study_seeds at commit 7935083
set -x
cd /work/study_seeds
export PYTHONPATH=/work/study_seeds OMP_NUM_THREADS=1 PY=/work/main/.venv/bin/python
J="hydra/launcher=joblib hydra.launcher.n_jobs=2"
F="experiment=cpu_size_attack paths.root=outputs/cpu_fidelity paths.models=outputs/cpu_size model=dcgan,wgangp"
while kill -0 9701 2>/dev/null; do sleep 5; done   # the vaegan references (victims done), started by run_seeds.sh
date; echo VAEGAN_VICTIMS_DONE
# (the vaegan references: run_seeds.sh's command, still running)
date; echo TRAIN_DONE
$PY attack.py -m experiment=cpu_size_attack seed=1 $J > logs/attack_seed1.log 2>&1
date; echo SEED1_DONE
$PY attack.py -m experiment=cpu_size_attack seed=2 $J > logs/attack_seed2.log 2>&1
date; echo SEED2_DONE
$PY attack.py -m $F data.train_size=64,256 setting=fullbb,partialbb calibration=reference calibration.reference_attack=setting $J > logs/fid_refattack.log 2>&1
date; echo FID_REFATTACK_DONE
$PY attack.py -m $F data.train_size=64 setting=whitebox calibration=none distance=paper $J > logs/fid_paper.log 2>&1
date; echo FID_PAPER_DONE
$PY attack.py -m $F data.train_size=64,256 setting=whitebox calibration=none setting.init=nn,zero setting.max_iter=30,100,1000 $J > logs/fid_budget.log 2>&1
date; echo FID_BUDGET_DONE
