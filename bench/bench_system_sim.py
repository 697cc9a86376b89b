"""System-model speed: wall time to simulate one decode token, 125M .. 13B, on the loihi2-estimate preset.

Goals (issue 7): <= 1 s for the 370M mapping, <= 30 s for 13B on this machine. For each scale the run
records (a) the SimPy wall time of one decode token against the wall time of the analytic closed-form
estimate of the same token (no SimPy, no contention), and (b) the simulated token latency against that
analytic latency (ratio = simulated / analytic: what contention and arrival order add). The wall time
counts building the system model from the mapping plus the token's simulation, not the compile.
Run: ``python bench/bench_system_sim.py`` → ``bench/results/system_sim.json`` and ``system_sim_wall.png``.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._records import RESULTS_DIR, record, write_records  # noqa: E402
from sim.system.activity import assumed_activity  # noqa: E402
from sim.system.compiler import chips_needed, compile_model  # noqa: E402
from sim.system.energy import load_preset  # noqa: E402
from sim.system.shapes import SCALES  # noqa: E402
from sim.system.model import SystemModel  # noqa: E402

PRESET = "loihi2-estimate"
GOALS_S = {"370m": 1.0, "13b": 30.0}


def main() -> None:
    base = load_preset(PRESET)
    # warm the Numba kernels (cached on disk after the first run) so compile time is not counted
    tiny = SCALES["125m"]
    p = base.with_overrides({"chips": chips_needed(tiny, base.hardware)})
    SystemModel(compile_model(tiny, p), p, assumed_activity(tiny)).decode_token_latency()
    records, walls = [], []
    for name, shape in SCALES.items():
        p = base.with_overrides({"chips": chips_needed(shape, base.hardware)})
        mapping = compile_model(shape, p)
        act = assumed_activity(shape)
        t0 = time.perf_counter()
        model = SystemModel(mapping, p, act)
        latency = model.decode_token_latency()
        wall = time.perf_counter() - t0
        t1 = time.perf_counter()
        analytic = model.analytic_token_latency()
        wall_analytic = time.perf_counter() - t1
        case = f"{name} on {p.hardware.chips} x {PRESET}, {mapping.n_cores} cores, {len(mapping.messages['src'])} messages"
        records.append(record("system_sim", case, "sim_wall_s_per_decode_token", wall, "s",
                              "analytic closed-form estimate of the same token (no SimPy), wall time", wall_analytic))
        records.append(record("system_sim", case, "simulated_token_latency_s", latency, "s",
                              "analytic closed-form token latency (no contention)", analytic))
        walls.append((shape.params, wall, wall_analytic))
        goal = GOALS_S.get(name)
        verdict = "" if goal is None else f"  goal <= {goal:g} s: {'met' if wall <= goal else 'MISSED'}"
        print(f"{case}: simulated one decode token in {wall:.3f} s (analytic {wall_analytic:.3f} s); "
              f"token latency {latency * 1e3:.2f} ms vs analytic {analytic * 1e3:.2f} ms "
              f"(x{latency / analytic:.2f}){verdict}")
    print(write_records("system_sim", records))
    _plot(walls)


def _plot(walls: list[tuple[int, float, float]]) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(5, 3.4), dpi=100)
    ax.plot([w[0] for w in walls], [w[1] for w in walls], "o-", label="SimPy decode token")
    ax.plot([w[0] for w in walls], [w[2] for w in walls], "s--", label="analytic closed form")
    ax.axhline(1.0, color="grey", ls=":", lw=0.8)
    ax.axhline(30.0, color="grey", ls=":", lw=0.8)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("parameters")
    ax.set_ylabel("wall time (s)")
    ax.set_title(f"system model speed ({PRESET})", fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    path = RESULTS_DIR / "system_sim_wall.png"
    fig.savefig(path)
    plt.close(fig)
    print(path)


if __name__ == "__main__":
    main()
