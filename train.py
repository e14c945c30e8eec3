"""Train a victim generative model (or a calibration reference model) on one split part.

    python train.py                                   # DCGAN on 256 embedded MNIST digits
    python train.py model=wgangp data=celeba data.root=~/data/celeba data.train_size=1024
    python train.py data.part=reference model=wgangp  # reference model for calibration
    python train.py -m model=dcgan,wgangp data.train_size=64,256
"""

import logging
from pathlib import Path

import hydra
import pytorch_lightning as pl
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from ganleaks.data import MembershipDataModule
from ganleaks.data.loading import load_sample_set, prepare_split, write_trained_on

log = logging.getLogger("ganleaks.train")


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg: DictConfig) -> None:
    from ganleaks.models.training import fit_victim

    run_dir = Path(HydraConfig.get().runtime.output_dir)
    pl.seed_everything(cfg.seed, workers=True)
    sample_set = load_sample_set(cfg.data)
    split = prepare_split(cfg.data, sample_set, cfg.seed, run_dir)
    write_trained_on(run_dir, cfg.data.part, split)
    datamodule = MembershipDataModule(sample_set, split, part=cfg.data.part, batch_size=cfg.data.batch_size,
                                      num_workers=cfg.data.num_workers, seed=cfg.seed)
    log.info("training %s on %d %s of %s (%s) -> %s", cfg.model.name, datamodule.num_train_samples,
             cfg.data.part, sample_set.name, "x".join(map(str, sample_set.shape)), run_dir)
    fit_victim(cfg, datamodule, run_dir)
    log.info("done: %s", run_dir)


if __name__ == "__main__":
    main()
