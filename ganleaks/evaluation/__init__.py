"""Metrics and figures of membership-inference attacks."""
