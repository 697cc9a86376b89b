"""Subcommands that front the library (train, eval, checkpoint, compile/simulate/activity, verilog, vivado, sim)."""
