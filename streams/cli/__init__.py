"""Command-line front ends of `python -m streams`: one module per sub-command."""
