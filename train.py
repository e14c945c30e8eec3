"""Train a victim generative model (or a calibration reference model) on one split part.

    python train.py                                   # DCGAN on 256 embedded MNIST digits
    python train.py model=wgangp data=celeba data.root=~/data/celeba data.train_size=1024
    python train.py data.part=reference model=wgangp  # reference model for calibration
    python train.py -m model=dcgan,wgangp data.train_size=64,256
"""

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from ganleaks.workflows import train


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg: DictConfig) -> None:
    train(cfg, HydraConfig.get().runtime.output_dir)


if __name__ == "__main__":
    main()
