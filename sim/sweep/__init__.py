"""Architectural sweeps: a YAML spec of models x hardware knobs, run point by point on Dask.

``spec``    the spec schema, its validation and the design points it names;
``point``   one design point → its metrics (system model, optional quality and Yosys utilisation);
``engine``  the Dask runner (local cluster or ``--scheduler tcp://HOST:PORT``);
``store``   the SQLite results store (one row per point, resumable; CSV/Parquet export);
``pareto``  Pareto fronts;
``report``  the static HTML report.

The command, ``nmllm sweep SPEC.yaml``, and the plots of the fronts are :mod:`experiments.sweep`.
"""
