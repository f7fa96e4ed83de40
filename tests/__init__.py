"""Test suite of relationship-streams."""
