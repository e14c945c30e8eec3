"""Errors a user can fix, shared by the layers that raise them (data, settings, victims, the attack run)."""

from __future__ import annotations


class AttackConfigError(ValueError):
    """An attack configuration that cannot work with this victim or data; the message says what to change."""
