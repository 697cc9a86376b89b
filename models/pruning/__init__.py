"""Adaptive synaptic pruning of the integer program: statistics, saliency, per-layer thresholds, budget."""
