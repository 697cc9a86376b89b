"""RTL simulation speed: simulated clock cycles per second of each testbench, Verilator vs Icarus.

Each (unit, configuration) runs on every installed simulator in the same process; the baseline is
Icarus (the ratio says how many times faster Verilator simulates). Build time is reported separately, and
so are the vectors each testbench checked word for word and the cycles it simulated on each simulator
(records exist only for runs that passed on both: the RTL table of the README is generated from them).
Run: ``python bench/bench_rtl_sim.py`` → ``bench/results/rtl_sim.json`` (``--unit crossbar_tile`` re-measures
one unit's configurations and keeps the other units' records; the total wall time is then not re-measured).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._records import RESULTS_DIR, record, write_records  # noqa: E402
from verif.flow import run_bench  # noqa: E402
from verif.registry import BENCHES  # noqa: E402
from verif.simulators import available_simulators  # noqa: E402


def main(argv=None) -> None:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--unit", action="append", choices=list(BENCHES), help="unit to re-measure (repeatable)")
    args = parser.parse_args(argv)
    units = args.unit or list(BENCHES)
    sims = available_simulators()
    if "icarus" not in sims or "verilator" not in sims:
        raise SystemExit(f"this benchmark compares Verilator with Icarus; installed: {sims}")
    records = []
    t_all = time.perf_counter()
    run_total = 0.0
    for unit in units:
        for config in BENCHES[unit].configs:
            res = {sim: run_bench(unit, config, sim) for sim in ("verilator", "icarus")}
            for r in res.values():
                assert r.passed, r.detail
                run_total += r.run_s
            speed = {sim: r.cycles / r.run_s for sim, r in res.items()}
            case = f"{unit} {config}"
            records.append(record("rtl_sim", case, "simulated_cycles_per_s", speed["verilator"], "cycles/s",
                                  "icarus", speed["icarus"]))
            records.append(record("rtl_sim", case, "verilator_build_s", res["verilator"].build_s, "s",
                                  "icarus build", res["icarus"].build_s))
            for field in ("vectors", "cycles"):
                records.append(record("rtl_sim", case, f"{field}_passed", getattr(res["verilator"], field), field,
                                      "icarus", getattr(res["icarus"], field)))
            print(f"{case}: verilator {speed['verilator']:.0f} cycles/s, icarus {speed['icarus']:.0f} cycles/s")
    if args.unit:  # the other units keep their records (and the last whole-run wall time)
        path = RESULTS_DIR / "rtl_sim.json"
        kept = [r for r in json.loads(path.read_text()) if r["case"].split()[0] not in units] if path.exists() else []
        print(write_records("rtl_sim", kept + records, seed=1))
        return
    wall = time.perf_counter() - t_all
    records.append(record("rtl_sim", "every testbench on both simulators (what make sim runs)", "wall_s", wall, "s",
                          "sum of the simulator run times (no builds, no stimulus generation)", run_total))
    print(f"all testbenches on both simulators: {wall:.0f} s wall ({run_total:.0f} s in the simulators)")
    print(write_records("rtl_sim", records, seed=1))


if __name__ == "__main__":
    main()
