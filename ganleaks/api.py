"""``ganleaks.audit``: the attack of ``attack.py`` as one Python call, for notebooks.

The same engine underneath: the attack config is composed from ``conf/`` with Hydra's compose
API (as ``attack.py`` composes it) and run by :func:`ganleaks.orchestration.run.run_attack`. What
the user gives as files picks the file victims (``victim=generator`` / ``victim=samples``); what
the user gives as Python objects (a generator module, arrays of records) picks the in-memory
victims (``victim=python_generator`` / ``victim=python_samples``, :mod:`ganleaks.victims.in_memory`),
which take the objects themselves and are checked the same way.
"""

from __future__ import annotations

import csv
import difflib
import inspect
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ganleaks.config_dir import CONF_DIR  # the config folder attack.py composes (packaged, or the checkout's conf/)

log = logging.getLogger(__name__)

#: Keyword overrides that choose a config group (``distance="paper"``), not set a value.
GROUPS = ("distance", "trainer", "logger", "model", "data", "privacy", "audit")
#: Group choices :func:`audit` makes itself, which a keyword may replace (``victim="run"``).
CHOSEN_GROUPS = ("victim", "calibration")


@dataclass
class AuditResult:
    """What an audit found.

    Attributes:
        metrics: ``metrics.json``: AUC, TPR at low FPR (each with ``<name>_ci``, ``[low, high]`` of
            the 95% bootstrap interval), counts, and the run's facts.
        scores: ``scores.csv`` as a list of rows (``id``, ``member``, ``victim_loss``,
            ``reference_loss``, ``score``, ``status``; losses and scores as floats, NaN where a query failed).
        most_exposed: ``most_exposed.csv`` rows: the members with the highest membership score.
        out_dir: the run folder, or None when none was kept (``out_dir=None``).
    """

    metrics: dict
    scores: list[dict] = field(repr=False)
    most_exposed: list[dict] = field(repr=False)
    out_dir: Path | None = None

    def to_pandas(self):
        """The per-record scores as a ``pandas.DataFrame`` (pandas is imported only here)."""
        import pandas

        return pandas.DataFrame(self.scores)

    def __str__(self) -> str:
        """The verdict first, then every estimate with its interval (as ``attack.py`` prints them)."""
        from ganleaks.evaluation.estimates import result_lines

        setting, calibration = str(self.metrics.get("setting")), self.metrics.get("calibration")
        return "\n".join(result_lines(self.metrics, setting, calibration))

    @property
    def verdict(self) -> dict:
        """``metrics["verdict"]``: ``status`` (leakage, no evidence of leakage, inconclusive, no signal,
        flagged), ``decided`` (only the first two are verdicts) and the ``reasons``."""
        return self.metrics.get("verdict") or {}


def _number(text: str) -> float:
    return float(text) if text != "" else float("nan")


def _read_rows(path: Path, numbers: Sequence[str]) -> list[dict]:
    if not path.is_file():
        return []
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    for row in rows:
        for key in numbers:
            if key in row:
                row[key] = _number(row[key])
        if "member" in row:
            row["member"] = int(row["member"])
        if "rank" in row:
            row["rank"] = int(row["rank"])
    return rows


def _is_path(value: Any) -> bool:
    return isinstance(value, (str, os.PathLike))


def audit(
    setting: str = "whitebox",
    *,
    generator=None,
    samples=None,
    discriminator=None,
    members=None,
    nonmembers=None,
    out_dir: str | os.PathLike | None = None,
    calibration=None,
    latent_dim: int | None = None,
    output_range: Sequence[float] = (-1.0, 1.0),
    latent_distribution: str = "normal",
    value_range: Sequence[float] | None = None,
    overwrite: bool = False,
    **overrides: Any,
) -> AuditResult:
    """Audit a generator or a generated sample set for membership leakage of ``members``.

    Args:
        setting: ``whitebox``, ``partialbb``, ``fullbb``, ``montecarlo`` or ``discriminator``.
        generator: an ``nn.Module`` (``G(z (B, latent_dim)) -> (B, *shape)``; give ``latent_dim``
            and ``output_range``), or a weights file with ``**{"victim.generator._target_": ...}``.
        samples: a generated sample set instead of a generator (``fullbb`` / ``montecarlo``): a
            path (image folder, ``.npy`` / ``.npz``, ``.csv``) or an array / tensor.
        discriminator: an ``nn.Module`` (``D(x) -> (B,)`` or ``(B, 1)``) or a weights file, for
            ``setting="discriminator"``.
        members, nonmembers: the records the model was trained on, and held-out records of the
            same distribution: paths, or arrays / tensors (``(N, C, H, W)`` images or ``(N, D)``
            rows; floats in ``[-1, 1]`` unless ``value_range`` says otherwise).
        out_dir: write the run folder here (as ``attack.py`` does: ``scores.csv``,
            ``metrics.json``, plots, ``most_exposed.*``, ``summary.html``); None: a temporary
            folder, removed after the results are read. A folder that already holds anything is
            refused unless ``overwrite=True``.
        overwrite: write into an ``out_dir`` that is not empty: the outputs of an audit there are
            replaced, and its finished batches are resumed if they belong to this very audit (a
            different audit's batches are refused); nothing is deleted, other files stay as they are.
        calibration: a reference sample set (path or array) generated by a model that never saw
            a query (``calibration=samples``); None: uncalibrated.
        latent_dim, output_range, latent_distribution: of a generator given as a module or file.
        value_range: ``[low, high]`` of array records (members, non-members, samples) when not ``[-1, 1]``.
        **overrides: further config keys, dotted, e.g. ``**{"setting.k": 5000, "attack.batch_size": 32}``
            (a key the config does not have is refused, as on the command line; ``"+key"`` adds one,
            e.g. ``**{"+victim.generator.width": 64}``), a top-level key (``seed=1``), or a group
            choice (``distance="paper"``; ``audit="canaries"`` with ``**{"audit.randomized": True}``:
            the members and non-members are canaries whose membership fair coins decided, docs/PRIVACY_AUDIT.md).

    Returns:
        An :class:`AuditResult`. The modules given come back as they were passed: each submodule's
        training mode, each parameter's ``requires_grad`` and device (the attack itself runs them
        in eval mode with frozen weights).

    Raises:
        TypeError: a keyword argument or a config key that does not exist (naming the closest one).
        FileExistsError: ``out_dir`` holds files and ``overwrite`` is not set.
    """
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf, open_dict

    from ganleaks.config_resolvers import register_resolvers
    from ganleaks.data.user_sets import build_query_set, records_from_array
    from ganleaks.errors import launched_by
    from ganleaks.workflows import attack

    _check_keywords(overrides)
    if (generator is None) == (samples is None) and discriminator is None:
        raise ValueError("give the model to audit: generator=G (a module or weights file) or samples=... (not both)")
    if members is None or nonmembers is None:
        raise ValueError("give the records to query: members=... (trained on) and nonmembers=... (held out)")
    if _is_path(members) != _is_path(nonmembers):
        raise ValueError("give members and nonmembers the same way: both paths, or both arrays / tensors")
    victim: dict[str, Any] = {}  # Python objects the victim's class takes
    reference: dict[str, Any] = {}  # and the calibration reference's
    values: dict[str, Any] = {}
    if _is_path(members):
        values.update({"queries.members": str(members), "queries.nonmembers": str(nonmembers)})
        if value_range is not None:
            values["queries.value_range"] = list(value_range)
    else:
        victim["queries"] = build_query_set(
            records_from_array(members, name="members", value_range=value_range, what="members"),
            records_from_array(nonmembers, name="nonmembers", value_range=value_range, what="nonmembers"),
        )
    if samples is not None:
        kind = "samples" if _is_path(samples) else "python_samples"
        if _is_path(samples):
            values["victim.path"] = str(samples)
        else:
            victim["samples"] = records_from_array(samples, name="samples", value_range=value_range, what="samples",
                                                   options="victim")  # fmt: skip
    else:
        kind = _generator_victim(generator, discriminator, values, victim, latent_dim)
        values.update({"victim.output_range": list(output_range), "victim.latent_distribution": latent_distribution})
    group_overrides = [f"setting={setting}", f"victim={kind}", "logger=[]"]
    if calibration is not None:
        group_overrides.append("calibration=samples")
        if _is_path(calibration):
            values["calibration.path"] = str(calibration)
        else:
            values["calibration.path"] = "<array>"
            values["calibration.reference._target_"] = "ganleaks.victims.in_memory.InMemorySampleSetVictim"
            reference["samples"] = records_from_array(calibration, name="calibration", value_range=value_range,
                                                      what="calibration", options="calibration")  # fmt: skip
    user_values: dict[str, Any] = {}
    for key, value in overrides.items():
        if key in GROUPS or key in CHOSEN_GROUPS:
            group_overrides.append(f"{key}={value}")
        else:
            user_values[key] = value

    keep = out_dir is not None
    if out_dir is not None:
        out_dir = Path(os.path.expandvars(os.fspath(out_dir))).expanduser()  # "~/audits/run1": the home folder's
        _check_out_dir(out_dir, overwrite)
    run_dir = out_dir if out_dir is not None else Path(tempfile.mkdtemp(prefix="ganleaks-audit-"))
    modules = ModuleStates(net for net in (generator, discriminator) if net is not None and not _is_path(net))
    register_resolvers()
    try:
        with initialize_config_dir(version_base="1.3", config_dir=str(CONF_DIR)):
            cfg = compose(config_name="attack", overrides=group_overrides)
        _check_config_keys(cfg, user_values, ", ".join(choice for choice in group_overrides if choice != "logger=[]"))
        with open_dict(cfg):
            for key, value in {**values, **{key.lstrip("+"): value for key, value in user_values.items()}}.items():
                OmegaConf.update(cfg, key, value, merge=True, force_add=True)
            # The call that made the run, for summary.html and run.json (objects named by type and shape).
            cfg.api_call = _describe_call(
                setting,
                {"generator": generator, "samples": samples, "discriminator": discriminator, "members": members,
                 "nonmembers": nonmembers, "calibration": calibration, "latent_dim": latent_dim,
                 "output_range": None if generator is None else tuple(output_range), "value_range": value_range},
                overrides,
            )  # fmt: skip
        run_dir.mkdir(parents=True, exist_ok=True)
        with launched_by("api"), api_hints():
            metrics = attack(cfg, run_dir, objects={"victim": victim, "reference": reference})
        scores = _read_rows(run_dir / "scores.csv", ("victim_loss", "reference_loss", "score"))
        exposed = _read_rows(run_dir / "most_exposed.csv", ("score", "loss", "nonmember_percentile"))
    finally:
        modules.restore()
        if not keep:
            shutil.rmtree(run_dir, ignore_errors=True)
    return AuditResult(metrics, scores, exposed, run_dir if keep else None)


def _describe_argument(value: Any) -> str:
    """An argument as the call showed it: paths and numbers as written, objects by their type and shape."""
    if _is_path(value) or isinstance(value, (int, float, tuple, list)):
        return repr(str(value) if _is_path(value) else value)
    shape = getattr(value, "shape", None)
    return f"<{type(value).__name__}{' ' + 'x'.join(map(str, shape)) if shape is not None else ''}>"


def _describe_call(setting: str, arguments: dict, overrides: dict) -> str:
    """``ganleaks.audit('fullbb', samples=<ndarray 128x1x16x16>, ..., **{...})``: the call, for the record."""
    parts = [repr(setting)] + [
        f"{key}={_describe_argument(value)}" for key, value in arguments.items() if value is not None
    ]
    if overrides:
        parts.append("**" + repr({key: value if isinstance(value, (int, float, str)) else str(value)
                                  for key, value in overrides.items()}))  # fmt: skip
    return f"ganleaks.audit({', '.join(parts)})"


class ModuleStates:
    """What the attack changes on the user's modules, recorded to be put back: each submodule's training
    mode, each parameter's ``requires_grad``, each parameter's and buffer's device.

    The attack wraps the modules (:mod:`ganleaks.victims.external_networks`), sets them to eval mode
    with frozen weights and may move them to the accelerator; the caller gets them back as given.
    """

    def __init__(self, modules) -> None:
        self.modes: list[tuple[Any, bool]] = []
        self.grads: list[tuple[Any, bool]] = []
        self.devices: list[tuple[Any, str, str, Any]] = []  # (submodule, "_parameters" | "_buffers", name, device)
        for module in modules:
            for sub in module.modules():
                self.modes.append((sub, sub.training))
                for store in ("_parameters", "_buffers"):
                    for name, tensor in getattr(sub, store).items():
                        if tensor is not None:
                            self.devices.append((sub, store, name, tensor.device))
            self.grads.extend((param, param.requires_grad) for param in module.parameters())

    def restore(self) -> None:
        for sub, store, name, device in self.devices:
            tensor = getattr(sub, store).get(name)
            if tensor is not None and tensor.device != device:
                if store == "_parameters":
                    tensor.data = tensor.data.to(device)
                else:
                    getattr(sub, store)[name] = tensor.to(device)
        for sub, training in self.modes:
            sub.training = training
        for param, requires_grad in self.grads:
            param.requires_grad_(requires_grad)


def _check_out_dir(out_dir: Path, overwrite: bool) -> None:
    """Refuse an ``out_dir`` that is a file, or a folder that already holds anything, unless ``overwrite``."""
    if out_dir.exists() and not out_dir.is_dir():
        raise FileExistsError(f"out_dir={str(out_dir)!r} is a file, not a folder: give a new or empty folder")
    held = sorted(entry.name for entry in out_dir.iterdir()) if out_dir.is_dir() else []
    if held and not overwrite:
        shown = ", ".join(held[:5]) + (f", ... ({len(held)} entries)" if len(held) > 5 else "")
        raise FileExistsError(
            f"out_dir={str(out_dir)!r} already holds {shown}: give a new or empty folder, or pass overwrite=True "
            "to write into it (an audit's outputs there are replaced, its finished batches resumed if they are "
            "this audit's; nothing is deleted)"
        )


def _keyword_names() -> list[str]:
    """The keyword arguments :func:`audit` takes by name (its parameters, the group choices)."""
    parameters = [name for name, p in inspect.signature(audit).parameters.items() if p.kind is not p.VAR_KEYWORD]
    return [*parameters, *GROUPS, *CHOSEN_GROUPS]


def closest(name: str, candidates: Sequence[str]) -> str:
    """`` (did you mean 'x'?)`` for the candidate closest to ``name``, or nothing."""
    others = [candidate for candidate in candidates if not name.startswith(candidate + ".")]  # not its parents
    match = difflib.get_close_matches(name, others, n=1, cutoff=0.6)
    return f" (did you mean {match[0]!r}?)" if match else ""


def _check_keywords(overrides: dict[str, Any]) -> None:
    """Refuse a keyword that is neither a parameter, a group choice, a top-level key nor a dotted config key."""
    from omegaconf import OmegaConf

    top_level = [str(key) for key in OmegaConf.load(CONF_DIR / "attack.yaml") if key not in ("defaults", "hydra")]
    for key in overrides:
        if "." in key or key in GROUPS or key in CHOSEN_GROUPS or key in top_level:
            continue
        raise TypeError(
            f"audit() got an unexpected keyword argument {key!r}{closest(key, [*_keyword_names(), *top_level])}; "
            f"config keys are passed dotted, e.g. **{{'setting.k': 5000}}"
        )


def config_keys(cfg) -> list[str]:
    """Every key of ``cfg``, dotted (nodes and leaves), without resolving interpolations."""
    from omegaconf import DictConfig

    keys: list[str] = []

    def walk(node, prefix: str) -> None:
        for key in node.keys():
            dotted = f"{prefix}{key}"
            keys.append(dotted)
            child = node._get_node(key)
            if isinstance(child, DictConfig) and not child._is_missing() and not child._is_none():
                walk(child, dotted + ".")

    walk(cfg, "")
    return keys


def _check_config_keys(cfg, user_values: dict[str, Any], chosen: str) -> None:
    """A dotted key must exist in the composed config (as on the command line); ``+key`` adds a new one.

    ``chosen``: the group choices the config was composed with, as the message names them.
    """
    keys = set(config_keys(cfg))
    for key in user_values:
        name = key.lstrip("+")
        if key.startswith("+"):
            if name in keys:
                raise TypeError(f"{name!r} is already in the config: pass it without '+', **{{{name!r}: ...}}")
            continue
        if name not in keys:
            parent = name.rsplit(".", 1)[0]
            siblings = sorted(
                key for key in keys if key.rsplit(".", 1)[0] == parent and key.count(".") == name.count(".")
            )
            suggestion = closest(name, siblings or sorted(keys))
            if not suggestion and siblings:
                suggestion = f" ({parent} has {', '.join(key.rsplit('.', 1)[1] for key in siblings)})"
            raise TypeError(
                f"audit() got the config key {name!r}, which this config ({chosen}) does not have{suggestion}; "
                f"to add a new key (e.g. a generator's keyword argument) pass it with '+': **{{'+{name}': ...}}"
            )


#: Config keys that :func:`audit` takes as its own parameters.
PARAMETER_KEYS = {
    "victim.path": "samples",
    "victim.weights": "generator",
    "victim.discriminator_weights": "discriminator",
    "victim.latent_dim": "latent_dim",
    "victim.output_range": "output_range",
    "victim.latent_distribution": "latent_distribution",
    "victim.value_range": "value_range",
    "queries.members": "members",
    "queries.nonmembers": "nonmembers",
    "queries.value_range": "value_range",
    "calibration.path": "calibration",
}
#: A ``key=value`` a message tells the user to type on the command line.
HINT_TOKEN = re.compile(r"(?<![\w./\-{+])(\+?)([a-z_][a-z0-9_]*(?:\.[a-z_][a-z0-9_]*)+)=(\[[^\]\s]*\]|[^\s,;)`]+)")


def _literal(value: str) -> str:
    value = value.rstrip(".:")
    if re.fullmatch(r"-?[0-9.]+(e-?[0-9]+)?|\[.*\]", value):
        return value
    return {"true": "True", "false": "False", "null": "None"}.get(value, repr(value))


def api_hint(message: str) -> str:
    """The ``key=value`` hints of a message as :func:`audit`'s arguments: `` [in ganleaks.audit: ...]``, or nothing."""
    arguments, keys = [], {}
    for plus, key, value in HINT_TOKEN.findall(message):
        if key.startswith("hydra."):
            continue
        if key in PARAMETER_KEYS:
            arguments.append(f"{PARAMETER_KEYS[key]}={_literal(value)}")
        else:
            keys[plus + key] = _literal(value)
    if keys:
        arguments.append("**{" + ", ".join(f'"{key}": {value}' for key, value in keys.items()) + "}")
    return f" [in ganleaks.audit: {', '.join(dict.fromkeys(arguments))}]" if arguments else ""


@contextmanager
def api_hints() -> Iterator[None]:
    """A user error's command-line hints (``key=value``) also said as :func:`audit`'s arguments."""
    try:
        yield
    except (ValueError, OSError) as error:
        if error.args and isinstance(error.args[0], str):
            hint = api_hint(error.args[0])
            if hint:
                error.args = (error.args[0] + hint, *error.args[1:])
        raise


def _generator_victim(generator, discriminator, values: dict, victim: dict, latent_dim: int | None) -> str:
    """The victim config for a generator (and discriminator): files by path, modules as objects."""
    from torch import nn

    given = [net for net in (generator, discriminator) if net is not None]
    if all(_is_path(net) for net in given):
        values["victim.weights"] = None if generator is None else str(generator)
        if discriminator is not None:
            values["victim.discriminator_weights"] = str(discriminator)
        if latent_dim is not None:
            values["victim.latent_dim"] = int(latent_dim)
        return "generator"
    for part, net in (("generator", generator), ("discriminator", discriminator)):
        if isinstance(net, type) and issubclass(net, nn.Module):
            raise TypeError(
                f"{part}= got the class {net.__name__}, not a module: pass an instance, {net.__name__}(...)"
            )
        if net is not None and not isinstance(net, nn.Module):
            raise TypeError(
                f"{part}= must be a torch.nn.Module (both networks given as modules) or a weights file path, "
                f"got {type(net).__name__}"
            )
        if net is not None and any(t.is_meta for t in (*net.parameters(), *net.buffers())):
            raise ValueError(
                f"{part}= has weights on the meta device (built without data): load its weights first, e.g. "
                "net.to_empty(device='cpu') then net.load_state_dict(state)"
            )
    dim = latent_dim if latent_dim is not None else getattr(generator, "latent_dim", None)
    if generator is not None and dim is None:
        raise ValueError("give latent_dim= (the size of the latent your generator takes)")
    values["victim.latent_dim"] = None if dim is None else int(dim)
    victim.update(generator=generator, discriminator=discriminator)
    return "python_generator"
