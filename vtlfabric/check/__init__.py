"""Invariants judged over a fabric's history (see invariants.py and checker.py)."""
