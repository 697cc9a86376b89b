"""The system side: neurocore system model, memristor crossbars, design-space sweeps, FPGA flow."""

import models  # noqa: F401,E402  (sets Numba's cache folder before a sim module compiles anything)
