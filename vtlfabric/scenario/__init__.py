"""Scenarios: the real daemon on a virtual clock, driven by a scenario file from one seed."""
