"""Engines: training, evaluation, prediction, export and benchmarks."""
