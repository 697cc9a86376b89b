"""The SimPy system model of Loihi-style neurocores: hardware config, energy tables, shapes, compiler, baselines."""
