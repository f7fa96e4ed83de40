"""Tests of the `python -m streams` operations commands against the real broker."""
