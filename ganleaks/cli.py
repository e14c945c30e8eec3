"""The two Hydra apps, ``train`` and ``attack``: ``python train.py`` / ``python attack.py`` in a checkout
and the console scripts ``ganleaks-train`` / ``ganleaks-attack`` of an installed ganleaks run the same
:func:`run_app`, only with another config folder (the checkout's ``conf/``, or the packaged one:
:data:`ganleaks.config_dir.CONF_DIR`). Around Hydra: overrides checked before Hydra parses them, and
the errors a user causes printed as one message instead of a traceback.

A mistake a user can fix (a missing folder, a value out of range, a victim that does not fit the
data) is printed as one line, ``ErrorType: message``, with exit status 1; the full traceback stays
available with ``HYDRA_FULL_ERROR=1``. Anything else (a bug) keeps its traceback.
"""

from __future__ import annotations

import importlib
import inspect
import linecache
import os
import re
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.errors import CompactHydraException
from omegaconf import DictConfig

PACKAGE_DIR = Path(__file__).resolve().parent
QUOTING_RULE = (
    "Hydra's override grammar allows only ASCII letters, digits, spaces and _ - + . / : \\ * @ % ? | $ in unquoted "
    "values. Quote any other value (~, #, =, non-ASCII letters, a comma meant literally, ...) for Hydra and for the "
    "shell at once: "
    "single quotes around the whole override, double quotes around the value, e.g. 'data.root=\"~/data/celeba\"' "
    "(or write the path without ~: data.root=$HOME/data/celeba, expanded by the shell). "
    "See https://hydra.cc/docs/advanced/override_grammar/basic/#quoted-values"
)


class UserError(CompactHydraException):
    """A mistake the user can fix; Hydra prints it as its message alone (no traceback)."""


def _raised_by_ganleaks(error: BaseException) -> bool:
    """Whether the innermost frame of ``error``'s traceback is a ``raise`` statement in the ganleaks package."""
    tb = error.__traceback__
    if tb is None:
        return False
    while tb.tb_next is not None:
        tb = tb.tb_next
    filename = Path(tb.tb_frame.f_code.co_filename).resolve()
    if PACKAGE_DIR not in filename.parents:
        return False
    try:
        source, start = inspect.getsourcelines(tb.tb_frame.f_code)
        statement = source[tb.tb_lineno - start]
    except (OSError, IndexError):
        statement = linecache.getline(str(filename), tb.tb_lineno)
    return statement.lstrip().startswith("raise ")


def is_user_error(error: BaseException) -> bool:
    """A ValueError / FileNotFoundError / NotADirectoryError ganleaks raised on purpose, to say what to do.

    The same types raised elsewhere (by torch, numpy, a failing ``int(...)`` in our code) are bugs or
    unchecked values: they keep their traceback.
    """
    return isinstance(error, (ValueError, FileNotFoundError, NotADirectoryError)) and _raised_by_ganleaks(error)


def _full_error() -> bool:
    return os.environ.get("HYDRA_FULL_ERROR", "") not in ("", "0")


def missing_key(error: BaseException) -> str | None:
    """The dotted key of a mandatory value (``???``) that was read unset, or None if ``error`` is not that."""
    from omegaconf.errors import InterpolationToMissingValueError, MissingMandatoryValue

    if not isinstance(error, (MissingMandatoryValue, InterpolationToMissingValueError)):
        return None
    found = re.search(r"Missing mandatory value: ?([\w.\[\]]+)", str(error))
    if found:
        return found.group(1)
    return getattr(error, "full_key", None) or None


@contextmanager
def user_errors() -> Iterator[None]:
    """Turn the user errors raised inside into :class:`UserError` (one printed line), unless ``HYDRA_FULL_ERROR``."""
    try:
        yield
    except Exception as error:
        if _full_error():
            raise
        if is_user_error(error):
            raise UserError(f"{type(error).__name__}: {error}") from None
        key = missing_key(error)
        if key is not None:
            from ganleaks.errors import missing_key_message

            raise UserError(missing_key_message(key)) from None
        raise


def unknown_key_message(error: BaseException, name: str, argv: Sequence[str]) -> str | None:
    """For Hydra's "Could not override 'a.b'" (a key the config has not): the closest key, then how to add one.

    Hydra's own message advises ``+a.b=...``, which, for a misspelled key, adds a key nothing reads.
    """
    from hydra import compose
    from hydra.errors import ConfigCompositionException
    from omegaconf.errors import ConfigAttributeError, ConfigKeyError

    from ganleaks.api import closest, config_keys

    found = re.match(r"Could not override '([^']+)'", str(error))
    if not isinstance(error, ConfigCompositionException) or not isinstance(
        error.__cause__, (ConfigKeyError, ConfigAttributeError)
    ):
        return None
    if not found:
        return None
    key = found.group(1)
    value = next((arg.split("=", 1)[1] for arg in argv if arg.split("=", 1)[0] == key), "VALUE")
    choices = [arg for arg in argv if re.fullmatch(r"[a-z_]+=[\w/-]+", arg)]  # group choices shape the config
    try:
        keys = sorted(config_keys(compose(config_name=name, overrides=choices)))
    except Exception:
        keys = []
    options = group_options_with_key(key)
    if options:
        group = key.split(".", 1)[0]
        owners = " / ".join(f"{group}={option}" for option in options)
        chosen = next((arg.split("=", 1)[1] for arg in choices if arg.split("=", 1)[0] == group), None)
        if chosen is not None:
            return f"{key} is not a key of {group}={chosen}: it is a key of {owners}"
        return (
            f"{key} is not a key of this config: it is a key of {owners}, and a {group} key on the command line "
            f"is read before any choice a config or a sweep makes of {group}. Choose the option on the command "
            f"line first: {group}={options[0]} {key}={value}"
        )
    return (
        f"{key} is not a key of this config{closest(key, keys)}. A key the config does not have yet (a "
        f"generator's keyword argument) is added with '+': +{key}={value}"
    )


def group_options_with_key(key: str) -> list[str]:
    """The options of the config group ``key`` starts with that define the rest of ``key``:
    ``privacy.noise_multiplier`` -> ``["dp"]``; ``[]`` for a key of no group or of no option."""
    from omegaconf import OmegaConf

    from ganleaks.config_dir import config_dir

    group, _, rest = key.partition(".")
    folder = config_dir() / group
    if not rest or not re.fullmatch(r"\w+", group) or not folder.is_dir():
        return []
    options = []
    for path in sorted(folder.glob("*.yaml")):
        try:
            node = OmegaConf.to_container(OmegaConf.load(path), resolve=False)
        except Exception:  # an option this check cannot read is not one to advise
            continue
        for part in rest.split("."):
            node = node.get(part, KeyError) if isinstance(node, dict) else KeyError
        if node is not KeyError:
            options.append(path.stem)
    return options


@contextmanager
def hydra_errors_reported(name: str) -> Iterator[None]:
    """Errors Hydra meets before the task runs, said in one line: a mandatory key, a misspelled key.

    Hydra resolves ``hydra.run.dir`` (or the sweep's folder) before the task runs, where
    :func:`user_errors` cannot see it; a victim's folder name interpolates its mandatory keys
    (``victim.path``, ``victim.weights``). Hydra's ``run_and_report`` prints a ``CompactHydraException``
    as its message alone, so the error is turned into a :class:`UserError` inside it.
    """
    import hydra._internal.utils as hydra_utils

    original = hydra_utils.run_and_report

    def run_and_report(func: Callable[[], Any]) -> Any:
        def guarded() -> Any:
            try:
                with user_errors():
                    return func()
            except CompactHydraException as error:
                message = None if _full_error() else unknown_key_message(error, name, sys.argv[1:])
                if message is None:
                    raise
                raise UserError(message) from None

        return original(guarded)

    hydra_utils.run_and_report = run_and_report
    try:
        yield
    finally:
        hydra_utils.run_and_report = original


def check_overrides(argv: Sequence[str]) -> None:
    """Exit with the quoting rule when Hydra's grammar rejects an override (before Hydra prints only a lexer error)."""
    from hydra._internal.utils import get_args_parser
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import OverrideParseException

    try:
        args, _ = get_args_parser().parse_known_args(list(argv))
    except SystemExit:  # argparse already said what is wrong
        raise
    parser = OverridesParser.create()
    for override in args.overrides or []:
        try:
            parser.parse_overrides([override])
        except OverrideParseException as error:
            reason = str(error).splitlines()[0]
            sys.stderr.write(f"cannot parse the override {override!r} ({reason}).\n{QUOTING_RULE}\n")
            sys.exit(2)


def _launch() -> str:
    """``multirun`` under ``-m``, else ``run``: how hints name the run folder (:mod:`ganleaks.errors`)."""
    from hydra.types import RunMode

    return "multirun" if HydraConfig.get().mode == RunMode.MULTIRUN else "run"


def _train(cfg: DictConfig) -> None:
    from ganleaks.errors import launched_by
    from ganleaks.workflows import train  # already imported by run_app, before Hydra started

    with launched_by(_launch()), user_errors():  # a user's mistake: one message (HYDRA_FULL_ERROR=1: traceback)
        train(cfg, HydraConfig.get().runtime.output_dir)


def _attack(cfg: DictConfig) -> float:
    from ganleaks.errors import launched_by
    from ganleaks.evaluation.estimates import result_lines
    from ganleaks.orchestration.run_record import restore_hydra_files

    out_dir = HydraConfig.get().runtime.output_dir
    try:
        from ganleaks.workflows import attack  # already imported by run_app, before Hydra started

        with launched_by(_launch()), user_errors():  # a user's mistake: one message (HYDRA_FULL_ERROR=1: traceback)
            metrics = attack(cfg, out_dir, HydraConfig.get().overrides.task)
    except BaseException:
        # Hydra rewrote .hydra/ before this command failed: a finished run's record must stay its own.
        restore_hydra_files(out_dir)
        raise
    if metrics:  # the verdict first (flagged / inconclusive say so), then every estimate with its interval
        print("\n".join(result_lines(metrics, cfg.setting.name, cfg.calibration.name)))
    return metrics.get("auc", float("nan"))


#: The apps: name (also the primary config's name, conf/<name>.yaml) -> the task Hydra runs with the config.
APPS: dict[str, Callable[[DictConfig], Any]] = {"train": _train, "attack": _attack}


def run_app(name: str, config_dir: str | os.PathLike[str] | None = None) -> None:
    """Run the app ``name`` (``train`` / ``attack``) on the command line (``sys.argv``), as Hydra's main.

    Args:
        name: the app; its primary config is ``<config_dir>/<name>.yaml``.
        config_dir: the config folder; None: the installed package's (:data:`ganleaks.config_dir.CONF_DIR`).
    """
    from ganleaks.config_resolvers import expand_folder_overrides, register_resolvers

    if config_dir is None:
        from ganleaks.config_dir import CONF_DIR

        config_dir = CONF_DIR
    task = APPS[name]

    def task_function(cfg: DictConfig) -> Any:
        return task(cfg)

    # Hydra names the job after the last dotted part of the task function's module: the app's name, so
    # that the run's log is <run folder>/<name>.log (train.log, attack.log) whichever script runs it.
    task_function.__module__ = f"{__name__}.{name}"
    task_function.__qualname__ = task_function.__name__ = name
    main = hydra.main(version_base="1.3", config_path=str(Path(config_dir).resolve()), config_name=name)
    check_overrides(sys.argv[1:])
    sys.argv[1:] = expand_folder_overrides(sys.argv[1:])  # paths.root='~/audits': the home folder, not ./~
    register_resolvers()
    # Imported before Hydra sets up logging, as train.py and attack.py always did: Lightning, imported
    # while the root logger has no handler, keeps its messages on the console (out of <name>.log).
    importlib.import_module("ganleaks.workflows")
    with hydra_errors_reported(name):
        main(task_function)()


def train_main() -> None:
    """``ganleaks-train``: ``python train.py`` of an installed ganleaks, with the packaged config."""
    run_app("train")


def attack_main() -> None:
    """``ganleaks-attack``: ``python attack.py`` of an installed ganleaks, with the packaged config."""
    run_app("attack")
