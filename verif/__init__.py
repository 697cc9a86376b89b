"""cocotb testbenches (``tb_*.py``, free of Amaranth) and the flow that builds and runs them."""
