# cython: language_level=3
"""Shared-memory SPSC ring (implemented in its own issue; this module proves the build)."""

CORE_ABI_VERSION = 1
