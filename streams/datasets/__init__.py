"""Turning public interaction data sets into interaction events for tests and demos."""
