"""The VCK190 flow: Vivado/Vitis scripts for the RTL tops (run where Vivado is installed)."""
