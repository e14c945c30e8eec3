"""Keep dependencies' advertising and deprecation notices off our terminal output.

A run of ``train.py`` or ``attack.py`` should show our progress and results. Each filter below
names one exact message from one dependency module, so any other warning still shows.
"""

import functools
import logging
import warnings

# Lightning advertises its cloud logger whenever a Trainer is built without it (logged at INFO
# through this logger).
_LIGHTNING_RANK_ZERO_LOGGER = "pytorch_lightning.utilities.rank_zero"
_LITLOGGER_TIP = "💡 Tip: For seamless cloud logging"


class _DropLitLoggerTip(logging.Filter):
    """Drops the one Lightning log record that advertises LitLogger; passes everything else."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(_LITLOGGER_TIP)


@functools.cache
def silence_third_party_noise() -> None:
    """Install the narrow filters once per process (called where our workflows build Trainers)."""
    logging.getLogger(_LIGHTNING_RANK_ZERO_LOGGER).addFilter(_DropLitLoggerTip())
    # pytorch_lightning's own pytree helper uses torch's deprecated ``LeafSpec``; nothing we can change.
    warnings.filterwarnings(
        "ignore",
        message=r"`isinstance\(treespec, LeafSpec\)` is deprecated",
        category=FutureWarning,
        module=r"pytorch_lightning\.utilities\._pytree",
    )
