"""Errors a user can fix, shared by the layers that raise them (data, settings, victims, the attack run)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

#: How the running attack or training was started: ``run`` (``python attack.py ...``), ``multirun``
#: (``python attack.py -m ...``) or ``api`` (``ganleaks.audit(...)``); messages phrase their hints for it.
LAUNCH: ContextVar[str] = ContextVar("ganleaks_launch", default="run")


class AttackConfigError(ValueError):
    """An attack configuration that cannot work with this victim or data; the message says what to change."""


@contextmanager
def launched_by(how: str) -> Iterator[None]:
    """Within the block, hints are phrased for a run started by ``how`` (``run``, ``multirun``, ``api``)."""
    token = LAUNCH.set(how)
    try:
        yield
    finally:
        LAUNCH.reset(token)


def setting_hint(key: str, value: str) -> str:
    """``key=value`` as the user sets it where the run was started: an override, or the API's keyword."""
    if LAUNCH.get() == "api":
        return f'**{{"{key}": {value!r}}}' if not key.isidentifier() else f"{key}={value!r}"
    return f"{key}={value}"


def another_run_folder() -> str:
    """How to send this run to another folder, in the way it was started."""
    return {
        "api": "another out_dir=DIR",
        "multirun": "another hydra.sweep.dir=DIR",
    }.get(LAUNCH.get(), "another hydra.run.dir=DIR")


#: An example value for each mandatory key (``???``) a user may leave unset, for the one-line message.
MANDATORY_EXAMPLES = {
    "victim.path": "synthetic/",
    "victim.weights": "G.safetensors",
    "victim.latent_dim": "128",
    "victim.generator._target_": "mypkg.nets.Generator",
    "calibration.path": "reference_samples/",
    "queries.reference": "reference/",
    "data.root": "/path/to/images",
    "data.path": "/path/to/records.csv",
}


def missing_key_message(key: str) -> str:
    """One line: which mandatory key is not set, and an example of setting it (as the run was started)."""
    example = setting_hint(key, MANDATORY_EXAMPLES.get(key, "VALUE"))
    return f"{key} is not set, and this run needs it: add {example}"
