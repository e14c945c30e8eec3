"""Attack a trained victim for membership leakage (GAN-Leaks, Chen et al. CCS 2020).

    python attack.py setting=whitebox                       # the victim `python train.py` made
    python attack.py setting=fullbb calibration=reference   # needs `python train.py data.part=reference model=wgangp`
    python attack.py -m setting=fullbb,partialbb,whitebox data.train_size=64,256
"""

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from ganleaks.workflows import attack


@hydra.main(version_base="1.3", config_path="conf", config_name="attack")
def main(cfg: DictConfig) -> float:
    metrics = attack(cfg, HydraConfig.get().runtime.output_dir)
    if metrics:
        print(f"AUC {metrics['auc']:.4f}  TPR@1%FPR {metrics['tpr_at_fpr_0.01']:.4f}  "
              f"TPR@0.1%FPR {metrics['tpr_at_fpr_0.001']:.4f}  ({cfg.setting.name}, calibration={cfg.calibration.name}, "
              f"{metrics['n_members']} members / {metrics['n_nonmembers']} non-members)")
    return metrics.get("auc", float("nan"))


if __name__ == "__main__":
    main()
