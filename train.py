"""Train a victim generative model (or a calibration reference model) on one split part.

Examples::

    python train.py                                   # DCGAN on 256 embedded MNIST digits
    python train.py model=wgangp data=celeba data.root=$HOME/data/celeba data.train_size=1024
    python train.py data.part=reference model=wgangp  # reference model for calibration
    python train.py -m model=dcgan,wgangp data.train_size=64,256
    python train.py --help                            # the choices, more examples
"""

import sys

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from ganleaks.cli import check_overrides, user_errors
from ganleaks.workflows import train


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg: DictConfig) -> None:
    with user_errors():  # a mistake the user can fix: one message (HYDRA_FULL_ERROR=1: the traceback)
        train(cfg, HydraConfig.get().runtime.output_dir)


if __name__ == "__main__":
    check_overrides(sys.argv[1:])
    main()
