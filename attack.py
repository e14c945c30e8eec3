"""Attack a trained victim for membership leakage (GAN-Leaks, Chen et al. CCS 2020).

Examples::

    python attack.py setting=whitebox                       # the victim `python train.py` made
    python attack.py setting=fullbb calibration=reference   # needs `python train.py data.part=reference model=wgangp`
    python attack.py -m setting=fullbb,partialbb,whitebox data.train_size=64,256
    python attack.py --help                                 # the choices, more examples
"""

import sys

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from ganleaks.cli import check_overrides, user_errors
from ganleaks.config_resolvers import register_resolvers
from ganleaks.evaluation.estimates import format_estimate
from ganleaks.orchestration.run_record import restore_hydra_files
from ganleaks.workflows import attack


@hydra.main(version_base="1.3", config_path="conf", config_name="attack")
def main(cfg: DictConfig) -> float:
    out_dir = HydraConfig.get().runtime.output_dir
    try:
        with user_errors():  # a mistake the user can fix: one message (HYDRA_FULL_ERROR=1: the traceback)
            metrics = attack(cfg, out_dir, HydraConfig.get().overrides.task)
    except BaseException:
        # Hydra rewrote .hydra/ before this command failed: a finished run's record must stay its own.
        restore_hydra_files(out_dir)
        raise
    if metrics:
        print(
            f"AUC {format_estimate(metrics, 'auc')}  TPR@1%FPR {format_estimate(metrics, 'tpr_at_fpr_0.01')}  "
            f"TPR@0.1%FPR {format_estimate(metrics, 'tpr_at_fpr_0.001')}  ({cfg.setting.name}, "
            f"calibration={cfg.calibration.name}, {metrics['n_members']} members / {metrics['n_nonmembers']} "
            f"non-members; brackets: 95% bootstrap interval)"
        )
        print(
            f"best-threshold accuracy {format_estimate(metrics, 'accuracy')} (optimistic: the threshold is chosen "
            "on the evaluated queries)"
        )
    return metrics.get("auc", float("nan"))


if __name__ == "__main__":
    check_overrides(sys.argv[1:])
    register_resolvers()
    main()
