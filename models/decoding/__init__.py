"""Decoders over a model stepper: greedy, beam search and spike-based beam search."""
