"""Amaranth RTL units; every width comes from the number-format spec in models.program.numformat."""
