"""Where the Hydra config folder is, for ``ganleaks-train`` / ``ganleaks-attack`` and ``ganleaks.audit``.

The folder is ``conf/`` at the top of the repository (where ``python train.py`` and
``python attack.py`` read it); the wheel ships the same files as the package data ``ganleaks/conf``
(pyproject.toml maps the package ``ganleaks.conf`` onto ``conf/``). So:

* installed from a wheel (``pip install .``): ``ganleaks/conf`` inside the installed package;
* a checkout (``pip install -e .``, or the package imported from the checkout itself): the
  checkout's ``conf/``, next to the ``ganleaks`` package, which is what the editable install's
  ``ganleaks.conf`` maps to.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

#: Files every config folder of ganleaks has (the two apps' primary configs).
PRIMARY_CONFIGS = ("train.yaml", "attack.yaml")


def _is_config_dir(folder: Path) -> bool:
    return all((folder / name).is_file() for name in PRIMARY_CONFIGS)


def config_dir() -> Path:
    """The config folder of this ganleaks: the packaged ``ganleaks/conf``, else the checkout's ``conf/``.

    Raises:
        FileNotFoundError: neither holds ``train.yaml`` and ``attack.yaml`` (a broken install).
    """
    packaged = files("ganleaks") / "conf"  # a Path for every install on disk (not a zip)
    candidates = [packaged] if isinstance(packaged, Path) else []
    candidates.append(Path(__file__).resolve().parents[1] / "conf")
    for folder in candidates:
        if _is_config_dir(folder):
            return folder.resolve()
    raise FileNotFoundError(
        f"no ganleaks config folder (with {' and '.join(PRIMARY_CONFIGS)}) in {' or '.join(map(str, candidates))}: "
        "reinstall ganleaks (pip install . or, in a checkout, pip install -e .)"
    )


#: The config folder (see :func:`config_dir`).
CONF_DIR = config_dir()
