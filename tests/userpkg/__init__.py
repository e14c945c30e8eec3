"""A user's own package outside ganleaks: the networks an audit of "your own generator" loads by ``_target_``."""
