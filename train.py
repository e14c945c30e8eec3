"""Train a victim generative model (or a calibration reference model) on one split part.

Examples::

    python train.py                                   # DCGAN on 256 embedded MNIST digits
    python train.py model=wgangp data=celeba data.root=$HOME/data/celeba data.train_size=1024
    python train.py data.part=reference model=wgangp  # reference model for calibration
    python train.py -m model=dcgan,wgangp data.train_size=64,256
    python train.py --help                            # the choices, more examples
"""

from pathlib import Path

from ganleaks.cli import run_app

if __name__ == "__main__":
    # The checkout's conf/, next to this script (the console script ganleaks-train reads the packaged one).
    run_app("train", Path(__file__).resolve().parent / "conf")
