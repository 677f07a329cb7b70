"""Fixtures for the whole suite; the helpers they use live in kit_helpers.py (importable by name)."""

from kit_helpers import healthy_platform, platform, test_secrets, unused_port  # noqa: F401
