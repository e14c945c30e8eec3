#!/bin/bash
# C4 controls study, from /work/study_c4 at commit b498c5d (stage A's first DP attacks started at f0a9fe6: same code)
set -x
cd /work/study_c4
export PYTHONPATH=/work/study_c4 OMP_NUM_THREADS=1 PY=/work/main/.venv/bin/python
J="hydra/launcher=joblib hydra.launcher.n_jobs=2"
while kill -0 4262 2>/dev/null; do sleep 5; done
date; echo A_ATTACK_DP_01_DONE
$PY train.py -m experiment=cpu_dp_controls_nodp_train seed=0 trainer.max_steps=1500,2000 $J > logs/A_train_nodp2.log 2>&1
date; echo A_TRAIN_NODP2_DONE
$PY attack.py -m experiment=cpu_dp_controls_attack seed=0 privacy=dp privacy.noise_multiplier=2.0 $J > logs/A_attack_dp2.log 2>&1
$PY attack.py -m experiment=cpu_dp_controls_nodp_attack seed=0 $J > logs/A_attack_nodp.log 2>&1
date; echo STAGE_A_DONE
$PY train.py -m experiment=cpu_dp_controls_train seed=1,2 $J > logs/B_train_dp.log 2>&1
$PY train.py -m experiment=cpu_dp_controls_reference seed=1,2 $J > logs/B_train_ref.log 2>&1
$PY train.py -m experiment=cpu_dp_controls_nodp_train seed=1,2 $J > logs/B_train_nodp.log 2>&1
date; echo STAGE_B_TRAIN_DONE
$PY attack.py -m experiment=cpu_dp_controls_attack seed=1,2 $J > logs/B_attack_dp.log 2>&1
$PY attack.py -m experiment=cpu_dp_controls_nodp_attack seed=1,2 $J > logs/B_attack_nodp.log 2>&1
date; echo STAGE_B_DONE
