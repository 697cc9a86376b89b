"""The MatMul-free LM (hgrn_bit): config, PyTorch float view, Hugging Face-layout checkpoints, QAT training."""
