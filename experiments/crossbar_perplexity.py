"""Accuracy cost of crossbar execution on real text: perplexity against ADC bits, tile size, read noise, faults.

The model's ternary layers run on crossbar tiles through the integer view's accumulate hook
(:class:`models.program.integer_view.IntegerView` with a :class:`sim.crossbar.tile.CrossbarExecutor`); everything
else (norms, gates, the recurrence) stays the integer program. The digital reference is the same
integer view without the hook, which equals the golden model bit for bit. Perplexity is
:func:`models.eval.perplexity.text_perplexity` on a fixed prefix of the text (``--max-tokens``), so every
number names its text subset.

Sweeps (:data:`DEFAULT_SERIES`), one knob at a time around :func:`base_config`:

- ``adc_bits`` 3..8 with two ADC ranges: ``unit`` (``adc_shift=0``: one ADC step is one cell times one
  DAC step, the integer column value itself; codes beyond ``+-(2**(b-1) - 1)`` clip) and ``full``
  (``adc_shift=None``: the step is the smallest that holds the physical tile's worst case, so nothing
  ever clips but every step is coarser);
- ``tile`` 64..512 (square tiles; a layer smaller than a tile uses part of it);
- ``read_noise`` (per read, relative to each device's conductance) and ``stuck_at`` (total fault rate,
  half stuck at ``G_max``, half at ``G_min``).

The cheapest setting within ``tolerance`` (1 %) of the digital perplexity is then searched over a grid
of the knobs that set the cost (ADC bits x tile x ADC range x DAC bits, ideal devices), priced per token
by :func:`sim.crossbar.costs.token_report`. The search evaluates only settings that could beat the best
known one, from the cheapest chain first, and assumes that a setting that misses the budget is not
rescued by fewer ADC bits, a larger tile or more DAC bits per slice (same ADC range): those are skipped
and listed.

Every evaluated point is written to ``<out>/perplexity_sweep.json`` as soon as it is done; a rerun
with the same model and text subset skips the points already there (resume after an interruption).

Run: ``nmllm crossbar-sweep --max-tokens 2048 --out docs/crossbar`` (``experiments/crossbar_perplexity.py``);
the recorded runs had one BLAS thread (``OPENBLAS_NUM_THREADS=1`` in the environment) and one torch thread.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

from experiments.provenance import provenance
from experiments.resume import write_json

if TYPE_CHECKING:
    from sim.crossbar.costs import PeripheryCosts
    from sim.crossbar.tile import CrossbarConfig

__all__ = ["base_config", "DEFAULT_SERIES", "ADC_RANGES", "Series", "apply_knob", "check_knob_values",
           "program_layers", "Evaluator", "PerplexitySweep", "plot_sweep", "register"]


def base_config() -> CrossbarConfig:
    """The sweep's base: 128 x 128 tiles, 1-bit DACs, an 8-bit ADC with a one-column-unit step, ideal devices."""
    from models.program.crossbar import Periphery
    from sim.crossbar.tile import CrossbarConfig

    return CrossbarConfig(tile_rows=128, tile_cols=128, periphery=Periphery(dac_bits=1, adc_bits=8, adc_shift=0))


#: ADC range policies: ``adc_range`` value -> ``Periphery.adc_shift``.
ADC_RANGES = {"unit": 0, "full": None}

#: Knobs this driver adds to :attr:`CrossbarConfig.KNOBS`.
EXTRA_KNOBS = ("adc_range",)


@dataclass(frozen=True)
class Series:
    """One one-knob sweep: ``knob`` over ``values`` from ``base`` (knob settings on :func:`base_config`)."""

    name: str
    knob: str
    values: tuple
    base: tuple = ()          # ((knob, value), ...) applied to base_config() first
    label: str = ""


DEFAULT_SERIES = (
    Series("adc_bits", "adc_bits", (3, 4, 5, 6, 7, 8), label="ADC step = 1 column unit (clips)"),
    Series("read_noise", "read_noise", (0.01, 0.02, 0.05, 0.1, 0.2), label="read noise"),
    Series("stuck_at", "stuck_at", (0.001, 0.003, 0.01, 0.03, 0.1), label="stuck-at faults"),
    Series("tile", "tile", (64, 128, 256, 512), label="ADC step = 1 column unit (clips)"),
    Series("adc_bits_full_range", "adc_bits", (4, 5, 6, 7, 8), (("adc_range", "full"),),
           label="ADC range = tile worst case (never clips)"),
)

#: Grid of the cost-setting knobs searched for the cheapest setting within budget.
DEFAULT_GRID = {"adc_bits": (3, 4, 5, 6, 7, 8), "tile": (64, 128, 256, 512), "adc_range": ("unit", "full"),
                "dac_bits": (1, 2)}

RESULTS_NAME = "perplexity_sweep.json"


# ----------------------------------------------------------------------------- knobs
def apply_knob(config: CrossbarConfig, knob: str, value) -> CrossbarConfig:
    """``config`` with one knob set: the knobs of :attr:`CrossbarConfig.KNOBS` plus ``adc_range``."""
    if knob == "adc_range":
        if value not in ADC_RANGES:
            raise ValueError(f"ADC range {value!r} is not one of {', '.join(map(repr, ADC_RANGES))}")
        return replace(config, periphery=replace(config.periphery, adc_shift=ADC_RANGES[value]))
    if knob == "stuck_at" and (isinstance(value, bool) or not isinstance(value, (int, float))
                               or not 0.0 <= value <= 1.0):
        raise ValueError(f"Stuck-at rate {value!r} is outside [0, 1]")
    return config.with_knob(knob, value)


def program_layers(program) -> dict[str, tuple[int, int]]:
    """``name -> (fan_in, out)`` of every ternary layer of an integer program, named as the view names them."""
    layers = {f"layers.{li}.{n}": (p.fan_in, p.fan_out) for li, layer in enumerate(program.layers)
              for n, p in layer.proj.items()}
    layers["lm_head"] = (program.lm_head.fan_in, program.lm_head.fan_out)
    return layers


def check_knob_values(knob: str, values: Sequence, layers: dict[str, tuple[int, int]],
                      base: CrossbarConfig | None = None) -> list[CrossbarConfig]:
    """The configurations of ``knob`` over ``values`` from ``base`` (default :func:`base_config`); a bad value
    raises a one-line ``ValueError``."""
    from sim.crossbar.tile import CrossbarConfig

    base = base_config() if base is None else base
    if knob not in CrossbarConfig.KNOBS and knob not in EXTRA_KNOBS:
        raise ValueError(f"Unknown crossbar knob {knob!r}; use one of "
                         f"{', '.join(list(CrossbarConfig.KNOBS) + list(EXTRA_KNOBS))}")
    if not len(values):
        raise ValueError(f"Knob {knob!r} has no values to sweep")
    widest = max(fan_in for fan_in, _ in layers.values())
    configs = []
    for v in values:
        if knob == "tile":
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"Tile size must be a positive integer, not {v!r}")
            if v > widest:
                raise ValueError(f"Tile {v} is larger than the model's layers allow (largest fan-in {widest})")
        try:
            configs.append(apply_knob(base, knob, v))
        except TypeError as e:   # a value of the wrong type (``--values adc_bits=x``) is a user's mistake too
            raise ValueError(str(e)) from None
    return configs


def _key(config: CrossbarConfig) -> str:
    return json.dumps(config.describe(), sort_keys=True, default=str)


# ----------------------------------------------------------------------------- evaluation
class Evaluator:
    """Perplexity of an integer program on a fixed text prefix, digitally or on crossbars."""

    def __init__(self, program, tokenizer, text: str, *, max_tokens: int | None, window: int = 256,
                 stride: int = 128, batch_size: int = 8):
        if max_tokens is not None and (isinstance(max_tokens, bool) or not isinstance(max_tokens, int)
                                       or max_tokens < 1):
            raise ValueError(f"--max-tokens must be a positive integer, not {max_tokens!r}")
        self.program, self.tokenizer, self.text = program, tokenizer, text
        self.max_tokens, self.window, self.stride, self.batch_size = max_tokens, window, stride, batch_size
        self.layers = program_layers(program)

    def __call__(self, config: CrossbarConfig | None) -> dict:
        """Perplexity record of ``config`` (None: the digital integer view)."""
        from models.program.integer_view import IntegerView
        from models.eval.perplexity import text_perplexity
        from sim.crossbar.tile import CrossbarExecutor

        executor = None if config is None else CrossbarExecutor(config)
        view = IntegerView(self.program, accumulate=executor)
        t0, c0 = time.perf_counter(), time.process_time()
        r = text_perplexity(view.logits_float, self.tokenizer, self.text, window=self.window, stride=self.stride,
                            max_tokens=self.max_tokens, batch_size=self.batch_size)
        out = {k: r[k] for k in ("token_ppl", "word_ppl", "bits_per_byte", "nll", "tokens", "words",
                                 "forward_tokens")}
        out.update(wall_s=time.perf_counter() - t0, cpu_s=time.process_time() - c0)
        if executor is not None:
            conv = sum(layer.events["adc_conversions"] for layer in executor.layers.values())
            clipped = sum(layer.events["adc_clipped"] for layer in executor.layers.values())
            out["adc_clipped_fraction"] = clipped / conv if conv else 0.0
        return out


def _describe_point(config: CrossbarConfig, layers, costs) -> dict:
    from sim.crossbar.costs import token_report

    report = token_report(layers, config, costs)
    return {"energy_pj_per_token": report["energy_pj"], "adc_conversions_per_token": report["adc_conversions"]}


def _knob_summary(config: CrossbarConfig) -> dict:
    p, d = config.periphery, config.device
    return {"tile": config.tile_rows, "adc_bits": p.adc_bits, "dac_bits": p.dac_bits,
            "adc_range": "full" if p.adc_shift is None else ("unit" if p.adc_shift == 0 else p.adc_shift),
            "read_noise": d.read_noise, "stuck_at": d.stuck_on + d.stuck_off}


class PerplexitySweep:
    """The sweep with its resumable results file (see the module docstring)."""

    def __init__(self, evaluate: Callable[[CrossbarConfig | None], dict], layers: dict[str, tuple[int, int]],
                 meta: dict, path: Path, *, tolerance: float = 0.01, costs: PeripheryCosts | None = None,
                 progress: bool = True):
        from sim.crossbar.costs import PeripheryCosts

        if not (isinstance(tolerance, (int, float)) and 0 <= tolerance < 1):
            raise ValueError(f"Tolerance must be in [0, 1), not {tolerance!r}")
        self.evaluate, self.layers, self.path = evaluate, layers, Path(path)
        self.tolerance, self.costs, self.progress = float(tolerance), costs or PeripheryCosts.load(), progress
        self.evaluations = 0
        self.data = {"meta": dict(meta), "digital": None, "points": {}, "series": {}, "search": None,
                     "cheapest": None}
        if self.path.exists():
            old = json.loads(self.path.read_text())
            if old.get("meta") != self.data["meta"]:
                was = old.get("meta", {})
                diff = sorted(k for k in set(was) | set(meta) if was.get(k) != meta.get(k))
                raise ValueError(f"{self.path} holds results of another model or text subset "
                                 f"(differs in {', '.join(diff)}); pass another --out or remove it")
            self.data.update(old)

    # -- storage
    def save(self) -> None:
        """Write the results file atomically, with the provenance of this write."""
        self.data["provenance"] = provenance()
        write_json(self.path, json.loads(json.dumps(self.data, default=str)))

    @property
    def reference(self) -> float:
        if self.data["digital"] is None:
            self.data["digital"] = self.evaluate(None)
            self.evaluations += 1
            self.save()
        return self.data["digital"]["token_ppl"]

    def point(self, config: CrossbarConfig) -> dict:
        """The record of ``config``, evaluated now unless the results file has it."""
        key = _key(config)
        if key not in self.data["points"]:
            rec = {"knobs": _knob_summary(config), **_describe_point(config, self.layers, self.costs),
                   **self.evaluate(config), "config": config.describe()}
            self.data["points"][key] = rec
            self.evaluations += 1
            self.save()
        rec = self.data["points"][key]
        rec["within_budget"] = rec["token_ppl"] <= self.reference * (1 + self.tolerance)
        rec["relative_to_digital"] = rec["token_ppl"] / self.reference - 1
        return rec

    # -- one knob at a time
    def run_series(self, series: Sequence[Series]) -> None:
        base0 = base_config()
        plans = []
        for s in series:
            base = base0
            for k, v in s.base:
                base = apply_knob(base, k, v)
            plans.append((s, base, check_knob_values(s.knob, s.values, self.layers, base)))
        self.reference
        todo = [(s, v, c) for s, _, cs in plans for v, c in zip(s.values, cs)]
        bar = _bar(len(todo) + 1, "sweep", self.progress)
        for cfg in [base0] + [c for _, _, c in todo]:
            rec = self.point(cfg)
            bar.set_postfix_str(f"{_short(cfg)} ppl {rec['token_ppl']:.2f}")
            bar.update(1)
        bar.close()
        for s, base, cs in plans:
            self.data["series"][s.name] = {
                "knob": s.knob, "label": s.label, "base": dict(s.base),
                "base_point": _key(base),
                "points": [{"value": v, "key": _key(c)} for v, c in zip(s.values, cs)]}
        self.data["base"] = _key(base0)
        self.save()

    # -- cheapest within budget
    def search_cheapest(self, grid: dict | None = None, max_evaluations: int = 8) -> dict | None:
        """The cheapest grid setting within budget (energy per token); see the module docstring."""
        from sim.crossbar.costs import token_report

        if grid is None:   # the default grid, without tiles wider than every layer
            widest = max(fan_in for fan_in, _ in self.layers.values())
            grid = {**DEFAULT_GRID, "tile": tuple(t for t in DEFAULT_GRID["tile"] if t <= widest) or (widest,)}
        grid = dict(grid)
        missing = {"adc_bits", "tile", "adc_range", "dac_bits"} - set(grid)
        if missing:
            raise ValueError(f"The search grid lacks {', '.join(sorted(missing))}")
        for knob, values in grid.items():
            if knob not in ("adc_bits", "tile", "adc_range", "dac_bits"):
                raise ValueError(f"Grid knob {knob!r} is not a cost knob (adc_bits, tile, adc_range, dac_bits)")
            check_knob_values(knob, values, self.layers)
        budget = self.reference * (1 + self.tolerance)
        bits = sorted(grid["adc_bits"])

        base0 = base_config()

        def cfg_of(b, t, r, d):
            c = base0
            for k, v in (("dac_bits", d), ("adc_range", r), ("tile", t), ("adc_bits", b)):
                c = apply_knob(c, k, v)
            return c

        def energy(c):
            return _describe_point(c, self.layers, self.costs)["energy_pj_per_token"]

        # best known: every evaluated ideal-device point within budget
        known = [(rec["energy_pj_per_token"], k) for k, rec in self.data["points"].items()
                 if rec["token_ppl"] <= budget and rec["knobs"]["read_noise"] == 0 and rec["knobs"]["stuck_at"] == 0]
        best = min(known) if known else (math.inf, None)
        # (bits, tile, range, dac) that missed the budget, the one-knob points included
        failures = [tuple(rec["knobs"][k] for k in ("adc_bits", "tile", "adc_range", "dac_bits"))
                    for rec in self.data["points"].values()
                    if rec["token_ppl"] > budget and rec["knobs"]["read_noise"] == 0 and rec["knobs"]["stuck_at"] == 0]
        log = []
        chains = sorted(itertools.product(grid["tile"], grid["adc_range"], grid["dac_bits"]),
                        key=lambda trd: energy(cfg_of(bits[0], *trd)))
        evaluations = 0

        class _Limit(Exception):
            pass

        def test(b, t, r, d) -> bool:
            nonlocal best, evaluations
            c = cfg_of(b, t, r, d)
            entry = {"adc_bits": b, "tile": t, "adc_range": r, "dac_bits": d, "energy_pj_per_token": energy(c)}
            log.append(entry)
            fresh = _key(c) not in self.data["points"]
            dominated = next((f for f in failures if f[2] == r and b <= f[0] and t >= f[1] and d >= f[3]), None)
            if fresh and dominated is not None:
                entry["skipped"] = (f"assumed over budget: {dominated[0]} ADC bits ({r} range), "
                                    f"{dominated[1]}-row tiles, {dominated[3]}-bit DAC missed it")
                return False
            if fresh and evaluations >= max_evaluations:
                entry["skipped"] = f"not evaluated: the search's limit of {max_evaluations} new evaluations"
                raise _Limit
            rec = self.point(c)
            evaluations += fresh
            entry.update(token_ppl=rec["token_ppl"], within_budget=rec["within_budget"], evaluated_now=fresh)
            if rec["within_budget"]:
                if entry["energy_pj_per_token"] < best[0]:
                    best = (entry["energy_pj_per_token"], _key(c))
                return True
            failures.append((b, t, r, d))
            return False

        try:
            for t, r, d in chains:
                cands = [b for b in bits if energy(cfg_of(b, t, r, d)) < best[0]]
                if not cands or not test(cands[-1], t, r, d):
                    continue           # even the most bits this chain can afford miss the budget
                lo, hi = 0, len(cands) - 2   # fewest bits within budget (cands[hi + 1] is within)
                while lo <= hi:
                    mid = (lo + hi) // 2
                    if test(cands[mid], t, r, d):
                        hi = mid - 1
                    else:
                        lo = mid + 1
            complete = True
        except _Limit:
            complete = False
        cheapest = None
        if best[1] is not None:
            rec = self.data["points"][best[1]]
            cheapest = {"knobs": rec["knobs"], "token_ppl": rec["token_ppl"],
                        "relative_to_digital": rec["token_ppl"] / self.reference - 1,
                        "energy_pj_per_token": rec["energy_pj_per_token"],
                        "adc_conversions_per_token": rec["adc_conversions_per_token"], "key": best[1],
                        "token_report": token_report(self.layers, _config_of(rec["config"]), self.costs)}
        self.data["search"] = {"grid": {k: list(v) for k, v in grid.items()}, "tolerance": self.tolerance,
                               "budget_ppl": budget, "complete": complete, "steps": log}
        self.data["cheapest"] = cheapest
        self.save()
        return cheapest


def _config_of(describe: dict) -> CrossbarConfig:
    """The :class:`CrossbarConfig` of a :meth:`CrossbarConfig.describe` dict."""
    from models.program.crossbar import Periphery
    from sim.crossbar.device import DeviceParams
    from sim.crossbar.ir_drop import WireParams
    from sim.crossbar.tile import CrossbarConfig

    dev = {k.split(".", 1)[1]: v for k, v in describe.items() if k.startswith("device.")}
    per = {k.split(".", 1)[1]: v for k, v in describe.items() if k.startswith("periphery.")}
    wires = describe.get("wires")
    return CrossbarConfig(tile_rows=describe["tile_rows"], tile_cols=describe["tile_cols"],
                          device=DeviceParams(**dev), periphery=Periphery(**per),
                          wires=None if wires is None else WireParams(**wires))


def _short(config: CrossbarConfig) -> str:
    k = _knob_summary(config)
    return (f"tile {k['tile']} adc {k['adc_bits']}b/{k['adc_range']} dac {k['dac_bits']}b "
            f"rn {k['read_noise']:g} sa {k['stuck_at']:g}")


class _NoBar:
    def update(self, n=1):
        pass

    def set_postfix_str(self, s):
        pass

    def close(self):
        pass


def _bar(total: int, desc: str, enabled: bool):
    if not enabled:
        return _NoBar()
    from tqdm import tqdm
    return tqdm(total=total, desc=desc, unit="pt", dynamic_ncols=True, mininterval=0.5 if sys.stderr.isatty() else 10.0)


# ----------------------------------------------------------------------------- plots
_AXES = {"adc_bits": ("ADC bits", False), "tile": ("tile size (rows = columns)", True),
         "read_noise": ("read noise (std, fraction of G per read)", True),
         "stuck_at": ("stuck-at fault rate (half on, half off)", True)}


def plot_sweep(data: dict, out_dir: Path) -> list[Path]:
    """``ppl_vs_<knob>.png`` per swept knob: perplexity against the knob, the digital line and the 1 % budget."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ref = data["digital"]["token_ppl"]
    tol = data["search"]["tolerance"] if data.get("search") else 0.01
    meta = data["meta"]
    base = data["points"].get(data.get("base", ""))
    by_knob: dict[str, list] = {}
    for name, s in data["series"].items():
        by_knob.setdefault(s["knob"], []).append((name, s))
    paths = []
    for knob, series in by_knob.items():
        fig, ax = plt.subplots(figsize=(6.4, 4.2))
        label, logx = _AXES.get(knob, (knob, False))
        for name, s in series:
            pts = [(p["value"], data["points"][p["key"]]) for p in s["points"] if p["key"] in data["points"]]
            if not pts:
                continue
            ax.plot([v for v, _ in pts], [r["token_ppl"] for _, r in pts], "o-", label=s["label"] or name)
        ax.axhline(ref, color="k", lw=1, label=f"digital (golden) {ref:.2f}")
        ax.axhspan(ref, ref * (1 + tol), color="g", alpha=0.15, label=f"within {100 * tol:g} %")
        if base is not None and knob in ("read_noise", "stuck_at"):
            ax.axhline(base["token_ppl"], color="0.5", ls=":", lw=1, label=f"base, no {knob.replace('_', ' ')}")
        if logx:
            ax.set_xscale("log", base=2 if knob == "tile" else 10)
        if knob == "tile":
            vals = sorted({p["value"] for _, s in series for p in s["points"]})
            ax.set_xticks(vals, [str(v) for v in vals])
        ax.set_yscale("log")
        ax.set_xlabel(label)
        ax.set_ylabel("token perplexity")
        ax.set_title(f"Bundled model on crossbars, WikiText-2 test, first {meta['max_tokens']} tokens", fontsize=9)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        path = Path(out_dir) / f"ppl_vs_{knob}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        paths.append(path)
    return paths


# ----------------------------------------------------------------------------- CLI
def _parse_values(items: Sequence[str]) -> dict[str, tuple]:
    out = {}
    for item in items:
        if "=" not in item:
            raise ValueError(f"--values takes KNOB=v1,v2,..., not {item!r}")
        knob, vals = item.split("=", 1)
        parsed = []
        for v in vals.split(","):
            v = v.strip()
            try:
                parsed.append(int(v))
            except ValueError:
                try:
                    parsed.append(float(v))
                except ValueError:
                    parsed.append(v)
        out[knob.strip()] = tuple(parsed)
    return out


def register(subparsers) -> None:
    """Add the ``crossbar-sweep`` subcommand."""
    p = subparsers.add_parser("crossbar-sweep", help="perplexity on crossbar tiles against ADC bits, tile size, "
                              "read noise, faults; cheapest setting within budget",
                              description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="models/bundled", help="checkpoint directory (default models/bundled)")
    p.add_argument("--data", default=None, help="raw text (default ../shared/data/wikitext-2/wiki.test.raw)")
    p.add_argument("--max-tokens", type=int, default=2048, help="score the first N tokens of the text (default 2048)")
    p.add_argument("--out", default="docs/crossbar", help="directory for perplexity_sweep.json and the plots")
    p.add_argument("--window", type=int, default=256)
    p.add_argument("--stride", type=int, default=128)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--tolerance", type=float, default=0.01, help="perplexity budget over digital (default 0.01)")
    p.add_argument("--values", action="append", default=[], metavar="KNOB=v1,v2",
                   help="replace the values of a series' knob (adc_bits, tile, read_noise, stuck_at); repeatable")
    p.add_argument("--search-evaluations", type=int, default=6,
                   help="most new evaluations the cheapest-setting search may run (0: no search)")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_run)


def _run(args) -> int:
    from models.eval.options import check_options

    check_options(**vars(args))  # before anything slow loads
    import torch

    torch.set_num_threads(1)
    from models.mmfree.checkpoint import load_checkpoint
    from models.program.integer_program import IntegerProgram
    from models.eval.perplexity import default_data_path
    from models.text.tokenizer import load_tokenizer

    overrides = _parse_values(args.values)
    series = []
    for s in DEFAULT_SERIES:
        series.append(replace(s, values=overrides[s.knob]) if s.knob in overrides else s)
    unknown = set(overrides) - {s.knob for s in DEFAULT_SERIES}
    if unknown:
        raise ValueError(f"--values names no swept knob: {', '.join(sorted(unknown))} "
                         f"(swept: {', '.join(sorted({s.knob for s in DEFAULT_SERIES}))})")
    if args.search_evaluations < 0:
        raise ValueError(f"--search-evaluations must be >= 0, not {args.search_evaluations}")
    data_path = Path(args.data) if args.data else default_data_path()
    text = data_path.read_text(encoding="utf-8")
    model = load_checkpoint(args.model)
    tok = load_tokenizer(args.model)
    program = IntegerProgram.from_model(model)
    ev = Evaluator(program, tok, text, max_tokens=args.max_tokens, window=args.window, stride=args.stride,
                   batch_size=args.batch_size)
    weights = Path(args.model) / "model.safetensors"
    meta = {"model": str(args.model), "model_sha256": hashlib.sha256(weights.read_bytes()).hexdigest()[:16],
            "data": data_path.name, "data_sha256": hashlib.sha256(text.encode()).hexdigest()[:16],
            "max_tokens": args.max_tokens, "window": args.window, "stride": args.stride}
    out = Path(args.out)
    sweep = PerplexitySweep(ev, ev.layers, meta, out / RESULTS_NAME, tolerance=args.tolerance,
                            progress=not args.no_progress)
    for s in series:   # refuse bad values before any compute
        base = base_config()
        for k, v in s.base:
            base = apply_knob(base, k, v)
        check_knob_values(s.knob, s.values, ev.layers, base)
    t0 = time.perf_counter()
    ref = sweep.reference
    print(f"digital: token perplexity {ref:.4f} on the first {args.max_tokens} tokens of {data_path.name}")
    sweep.run_series(series)
    cheapest = sweep.search_cheapest(max_evaluations=args.search_evaluations) if args.search_evaluations else None
    if not args.search_evaluations:
        sweep.data["search"] = sweep.data["search"] or {"tolerance": sweep.tolerance}
        sweep.save()
    plots = plot_sweep(sweep.data, out)
    d = sweep.data
    for name, s in d["series"].items():
        print(f"{name}: " + ", ".join(f"{p['value']}: {d['points'][p['key']]['token_ppl']:.2f}" for p in s["points"]))
    if cheapest:
        k = cheapest["knobs"]
        print(f"cheapest within {100 * sweep.tolerance:g} %: tile {k['tile']}, ADC {k['adc_bits']} bits "
              f"({k['adc_range']} range), DAC {k['dac_bits']} bits: ppl {cheapest['token_ppl']:.3f} "
              f"({100 * cheapest['relative_to_digital']:+.2f} %), "
              f"{cheapest['energy_pj_per_token'] / 1e3:.1f} nJ/token, "
              f"{cheapest['adc_conversions_per_token']} ADC conversions/token")
    elif args.search_evaluations:
        print(f"no evaluated setting is within {100 * sweep.tolerance:g} %")
    print(f"{sweep.evaluations} evaluations in {time.perf_counter() - t0:.0f} s; results {out / RESULTS_NAME}; "
          f"plots {', '.join(str(p) for p in plots)}")
    return 0
