"""ganleaks: membership-inference audits of generative models (GAN-Leaks, Chen et al. CCS 2020).

``ganleaks.audit(...)`` (:func:`ganleaks.api.audit`) is imported on first use, so that
``import ganleaks`` stays cheap.
"""

from typing import Any

from ganleaks.config_resolvers import register_resolvers

# conf/ reads ${ganleaks_expand:...}, ${ganleaks_fingerprint:...}, ...: any config composed after
# `import ganleaks` (attack.py, train.py, a notebook's hydra.compose) resolves them.
register_resolvers()

__all__ = ["audit"]


def __getattr__(name: str) -> Any:
    if name == "audit":
        from ganleaks.api import audit

        return audit
    raise AttributeError(f"module 'ganleaks' has no attribute {name!r}")
