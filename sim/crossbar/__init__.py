"""Memristor crossbar arrays: device model, IR drop, SPICE cross-check, functional tiles and their costs.

- :mod:`.device`: ternary weights on ``G+/G-`` pairs with seeded non-idealities;
- :mod:`.ir_drop`: nodal analysis of the word-line / bit-line network;
- :mod:`.spice`: the same network through ngspice, for validation;
- :mod:`.tile`: bit-serial DAC, column currents, ADC and shift-and-add over a whole layer, and the
  layer-executor hook (the integer tile itself, which the RTL computes, is :mod:`models.program.crossbar`);
- :mod:`.costs`: energy and latency per event, per MVM and per token, and the accuracy sweep.

The perplexity sweep on crossbars is ``nmllm crossbar-sweep`` (:mod:`experiments.crossbar_perplexity`).
"""
