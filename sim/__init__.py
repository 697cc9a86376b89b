"""The system side: neurocore system model, memristor crossbars, design-space sweeps, FPGA flow."""
