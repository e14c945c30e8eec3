"""Attack a trained victim for membership leakage (GAN-Leaks, Chen et al. CCS 2020).

Examples::

    python attack.py setting=whitebox                       # the victim `python train.py` made
    python attack.py setting=fullbb calibration=reference   # needs `python train.py data.part=reference model=wgangp`
    python attack.py -m setting=fullbb,partialbb,whitebox data.train_size=64,256
    python attack.py --help                                 # the choices, more examples
"""

from pathlib import Path

from ganleaks.cli import run_app

if __name__ == "__main__":
    # The checkout's conf/, next to this script (the console script ganleaks-attack reads the packaged one).
    run_app("attack", Path(__file__).resolve().parent / "conf")
