"""OmegaConf resolvers the configs use, registered once by the entry points (``attack.py``, ``ganleaks.audit``)."""

from __future__ import annotations

import hashlib
import json

from omegaconf import OmegaConf

DIGEST_RESOLVER = "ganleaks_digest"


def short_digest(*values) -> str:
    """8 hex digits of sha256 over ``values`` (JSON): a short, stable name for what defines a run."""
    text = json.dumps([None if v is None else str(v) for v in values])
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def register_resolvers() -> None:
    """Register ``${ganleaks_digest:a,b,...}`` (conf/paths/default.yaml's user victim name); idempotent."""
    if not OmegaConf.has_resolver(DIGEST_RESOLVER):
        OmegaConf.register_new_resolver(DIGEST_RESOLVER, short_digest)
