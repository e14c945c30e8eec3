"""ganleaks: membership-inference audits of generative models (GAN-Leaks, Chen et al. CCS 2020).

``ganleaks.audit(...)`` (:func:`ganleaks.api.audit`) is imported on first use, so that
``import ganleaks`` stays cheap.
"""

from typing import Any

__all__ = ["audit"]


def __getattr__(name: str) -> Any:
    if name == "audit":
        from ganleaks.api import audit

        return audit
    raise AttributeError(f"module 'ganleaks' has no attribute {name!r}")
