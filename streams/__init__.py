"""Dormant-relationship detection over a stream of social interactions."""

__version__ = "0.1.0"
