"""The integer program: number-format spec, export, torch integer view, Numba golden model, kernels, events."""
