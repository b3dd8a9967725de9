"""Workloads: the measurement procedures the profile modules in ``bench/`` run."""
