"""Memristor crossbar arrays: device model, IR drop, SPICE cross-check, functional tiles and their costs.

- :mod:`.device`: ternary weights on ``G+/G-`` pairs with seeded non-idealities;
- :mod:`.ir_drop`: nodal analysis of the word-line / bit-line network;
- :mod:`.spice`: the same network through ngspice, for validation;
- :mod:`.tile`: bit-serial DAC, column currents, ADC and shift-and-add over a whole layer, and the
  layer-executor hook (the integer tile itself, which the RTL computes, is :mod:`models.program.crossbar`);
- :mod:`.costs`: energy and latency per event, per MVM and per token, and the accuracy sweep;
- in-situ learning: :mod:`.pulsed_device` (pulsed conductance updates of one array: step shapes,
  asymmetry, variations, write noise, drift, pulse counts and costs), :mod:`.device_presets` (published
  devices and an ideal control), :mod:`.pulsed_update` (stochastic outer-product pulse SGD) and
  :mod:`.tiki_taka` (the asymmetry-tolerant rule with its symmetry-point handling), :mod:`.adapter_read` (an
  analog adapter read through the DAC/ADC periphery).

The perplexity sweep on crossbars is ``nmllm crossbar-sweep`` (:mod:`experiments.crossbar_perplexity`); the
in-situ adaptation study is ``nmllm adapt`` (:mod:`experiments.adapt`).
"""
