#!/bin/bash
# C4 controls study, run from /work/study_c4 at commit f0a9fe6
set -x
cd /work/study_c4
export PYTHONPATH=/work/study_c4 OMP_NUM_THREADS=1 PY=/work/main/.venv/bin/python
J="hydra/launcher=joblib hydra.launcher.n_jobs=2"
date
# stage A: seed 0
$PY train.py -m experiment=cpu_dp_controls_train seed=0 privacy=dp privacy.noise_multiplier=0.0 > logs/A_train_dp.log 2>&1 &
while kill -0 3453 2>/dev/null; do sleep 10; done   # the nodp seed-0 training started by the first try
wait
date; echo STAGE_A_TRAIN_DONE
$PY attack.py -m experiment=cpu_dp_controls_attack seed=0 $J > logs/A_attack_dp.log 2>&1
$PY attack.py -m experiment=cpu_dp_controls_nodp_attack seed=0 $J > logs/A_attack_nodp.log 2>&1
date; echo STAGE_A_DONE
# stage B: seeds 1, 2
$PY train.py -m experiment=cpu_dp_controls_train seed=1,2 $J > logs/B_train_dp.log 2>&1
$PY train.py -m experiment=cpu_dp_controls_reference seed=1,2 $J > logs/B_train_ref.log 2>&1
$PY train.py -m experiment=cpu_dp_controls_nodp_train seed=1,2 $J > logs/B_train_nodp.log 2>&1
date; echo STAGE_B_TRAIN_DONE
$PY attack.py -m experiment=cpu_dp_controls_attack seed=1,2 $J > logs/B_attack_dp.log 2>&1
$PY attack.py -m experiment=cpu_dp_controls_nodp_attack seed=1,2 $J > logs/B_attack_nodp.log 2>&1
date; echo STAGE_B_DONE
