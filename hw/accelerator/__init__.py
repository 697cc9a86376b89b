"""The whole-model accelerator: memory image format, AXI4 memory masters and the model-level top."""
