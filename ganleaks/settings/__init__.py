"""The threat models (paper section 4), one engine class each, registered by ``conf/setting/<name>.yaml``.

:mod:`.base` holds the interface every setting implements and the registry helpers; each setting
lives in its own module: :mod:`.full_black_box`, :mod:`.reconstruction` (partial black-box and
white-box), :mod:`.discriminator`, :mod:`.monte_carlo`, :mod:`.density_ratio` (DOMIAS).
"""

from ganleaks.settings.base import (
    AttackConfigError,
    AttackEngine,
    BatchResult,
    build_engine,
    check_setting,
    engine_class,
    setting_parameters,
)
from ganleaks.settings.density_ratio import DensityRatioEngine
from ganleaks.settings.discriminator import DiscriminatorEngine
from ganleaks.settings.full_black_box import FullBlackBoxEngine
from ganleaks.settings.monte_carlo import MonteCarloEngine
from ganleaks.settings.reconstruction import PartialBlackBoxEngine, ReconstructionEngine, WhiteBoxEngine

__all__ = [
    "AttackConfigError",
    "AttackEngine",
    "BatchResult",
    "DensityRatioEngine",
    "DiscriminatorEngine",
    "FullBlackBoxEngine",
    "MonteCarloEngine",
    "PartialBlackBoxEngine",
    "ReconstructionEngine",
    "WhiteBoxEngine",
    "build_engine",
    "check_setting",
    "engine_class",
    "setting_parameters",
]
