"""Helpers for the scale-out, fault and UI tests (real servers on loopback, fake SLURM tools)."""
