"""Unit tests of the pure engine (streams.engine), replay and data sets: no broker."""
