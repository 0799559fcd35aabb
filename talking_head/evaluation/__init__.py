"""Measuring the model: image and identity metrics, the paper's evaluation protocol, benchmarks."""
