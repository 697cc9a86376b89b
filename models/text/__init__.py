"""Text data: the shared corpus and data sets, held-out sources, and the byte-level BPE tokenizer."""
