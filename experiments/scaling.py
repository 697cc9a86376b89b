"""Scaling study: 125M .. 13B on each preset — chips, tokens/s, J/token, TTFT, and the simulator's own wall time.

Every point compiles the shape onto as many chips as it needs (``chips auto``) and simulates one decode
token and one pipelined prefill timestep. Baselines in the same run: PyTorch CPU decode measured on this
machine (dense fp32, shapes that fit in memory) and ANALYTIC GPU rooflines (Jetson Orin Nano, H100 SXM).
The 370M comparison with the published Loihi 2 result (Abreu et al. 2025) varies one assumption of the
``loihi2-estimate`` preset at a time.

Every row also carries the token's energy at the low and high end of its preset's stated static-power
``range`` (static power changes no timing, so the same simulation gives all three: dynamic energy + each
static power x chips x token time): :func:`static_range_table`, ``scaling_static_range.png``.

Run: ``nmllm scaling --out docs/system_model`` (``--cpu`` also measures the CPU baseline, ``--compare`` the
Loihi 2 variants). Writes ``scaling.json``, ``scaling_table.md`` and small PNGs; the points resume from
``scaling.partial.json`` in the output folder after a kill.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Iterable, Optional

# numpy-free (the defaults of ``nmllm scaling --scales``); tqdm and the rest of sim.system are imported
# inside the functions that run, so ``nmllm --help`` stays fast
from experiments.provenance import provenance
from experiments.resume import write_json
from sim.system.shapes import SCALES, ModelShape

__all__ = ["run_point", "run_scaling", "LOIHI2_VARIANTS", "compare_loihi2", "cpu_baselines", "write_outputs",
           "static_range_table", "static_range_findings", "register"]

#: ``loihi1`` maps 125M..13B since its messages are multicast records (``fanout: multicast``).
DEFAULT_PRESETS = ("loihi1", "loihi2-estimate", "crossbar", "vck190")

#: One assumption of ``loihi2-estimate`` changed at a time (and two combinations), for the 370M comparison.
_FAST = {f"{k}_ns": None for k in ("synaptic_op", "neuron_update", "neuron_idle", "state_update", "nonlinear_eval",
                                   "axon_out", "local_spike", "hop_ew", "hop_ns", "link_packet")}
LOIHI2_VARIANTS = {
    "as preset (2-bit weights, fill 1.0, 0.5 W/chip static, Loihi 1 latency / 2)": ({}, 1.0),
    "8-bit weights (reportedly as in Abreu et al.)": ({"weight_bits": 8}, 1.0),
    "fill 0.25 (each core a quarter full)": ({}, 0.25),
    "core and NoC latencies / 5 (= Loihi 1 / 10, the brief's 'up to 10x faster')": ("fast", 1.0),
    "static 0.1 W/chip": ({"static_per_chip": 0.1}, 1.0),
    "8-bit weights + Loihi 1 / 10 latencies": ("fast8", 1.0),
    "8-bit weights + Loihi 1 / 10 latencies + static 0.1 W": ("fast8s", 1.0),
}


def _variant_overrides(spec, preset) -> dict:
    if isinstance(spec, dict):
        return spec
    fast = {k: preset.costs[k].value / 5.0 for k in _FAST}
    extra = {"fast": {}, "fast8": {"weight_bits": 8}, "fast8s": {"weight_bits": 8, "static_per_chip": 0.1}}[spec]
    return {**fast, **extra}


def run_point(shape: ModelShape, preset_name: str, overrides: Optional[dict] = None, fill: float = 1.0,
              prompt_tokens: int = 500, progress: bool = False) -> dict:
    """Compile ``shape`` on as many chips as it needs and simulate it; one row of the study."""
    from sim.system.activity import assumed_activity
    from sim.system.compiler import chips_needed, compile_model
    from sim.system.energy import load_preset
    from sim.system.model import SystemModel

    preset = load_preset(preset_name)
    if overrides:
        preset = preset.with_overrides(overrides)
    preset = preset.with_overrides({"chips": chips_needed(shape, preset.hardware.replace(chips=1), fill)})
    t0 = time.perf_counter()
    mapping = compile_model(shape, preset, fill=fill)
    compile_s = time.perf_counter() - t0
    r = SystemModel(mapping, preset, assumed_activity(shape)).run(prompt_tokens=prompt_tokens, progress=progress)
    e = r.energy_j
    return {"model": shape.name, "params": shape.params, "derived_shape": shape.derived, "preset": preset_name,
            "estimate": preset.estimate, "overrides": overrides or {}, "fill": fill, "chips": r.chips, "cores": r.cores,
            "tokens_per_s": r.tokens_per_s, "ms_per_token": r.token_latency_s * 1e3, "ttft_s": r.ttft_s,
            "j_per_token": r.energy_per_token_j, "dynamic_j_per_token": r.energy_per_token_j - e["static"],
            "energy_j": e, "power_w": r.power_w, "prefill_j_per_token": r.prefill_energy_per_token_j,
            "mean_hops": r.mean_hops, "analytic_ms_per_token": r.analytic_token_latency_s * 1e3,
            "compile_s": compile_s, "decode_sim_wall_s": r.decode_sim_wall_s, "sim_wall_s": r.sim_wall_s,
            "messages_per_token": r.messages_sent, "activity": r.activity_source,
            "static_w_per_chip": preset.static_w, "static_range_w_per_chip": list(preset.static_range),
            "static_range_j": list(r.static_range_j), "energy_boundary": r.energy_boundary}


def run_scaling(presets: Iterable[str] = DEFAULT_PRESETS, scales: Iterable[str] = tuple(SCALES),
                progress: bool = True, partial: Optional[Path] = None) -> list[dict]:
    """Every preset x scale point, smallest first; with ``partial``, each point is stored there as it ends
    and a rerun with the same presets and scales resumes (:class:`experiments.resume.Results`)."""
    from experiments.resume import Results

    presets, scales = list(presets), list(scales)
    keys = [f"{p}/{s}" for p in presets for s in scales]
    res = Results(partial, {"presets": presets, "scales": scales}) if partial is not None else None
    rows: dict[str, dict] = {}
    todo = res.pending(keys, desc="scaling", progress=progress) if res else _bar(keys, progress)
    for key in todo:
        p, s = key.split("/")
        row = run_point(SCALES[s], p)
        rows[key] = res.put(key, row) if res else row
    return [res[k] if res else rows[k] for k in keys]


def _bar(keys: list[str], progress: bool):
    from tqdm import tqdm

    yield from tqdm(keys, desc="scaling", unit="point", disable=not progress)


def compare_loihi2(shape_name: str = "370m", progress: bool = True) -> list[dict]:
    """The ``loihi2-estimate`` variants of :data:`LOIHI2_VARIANTS` for one shape."""
    from tqdm import tqdm

    from sim.system.energy import load_preset

    base = load_preset("loihi2-estimate")
    rows = []
    for label, (spec, fill) in tqdm(LOIHI2_VARIANTS.items(), desc="loihi2 variants", unit="variant", disable=not progress):
        row = run_point(SCALES[shape_name], "loihi2-estimate", _variant_overrides(spec, base), fill=fill)
        row["variant"] = label
        rows.append(row)
    return rows


def cpu_baselines(scales: Iterable[str] = tuple(SCALES), tokens: int = 8, threads: int = 1, progress: bool = True) -> list[dict]:
    """Measured PyTorch CPU decode for the shapes that fit in memory (others are listed as skipped)."""
    from tqdm import tqdm

    from sim.system.baselines import fits_in_memory, measure_cpu_decode

    rows = []
    for s in tqdm(list(scales), desc="cpu baseline", unit="model", disable=not progress):
        shape = SCALES[s]
        if not fits_in_memory(shape):
            rows.append({"model": s, "params": shape.params, "skipped": f"fp32 weights {shape.params * 4 / 1e9:.1f} GB "
                         f"exceed 40 % of the available memory"})
            continue
        rows.append({**measure_cpu_decode(shape, tokens=tokens, threads=threads).to_dict(), "skipped": None})
    return rows


def gpu_rows(scales: Iterable[str] = tuple(SCALES)) -> list[dict]:
    from sim.system.baselines import gpu_roofline

    return [gpu_roofline(SCALES[s], g, bpw) for s in scales for g in ("jetson-orin-nano", "h100-sxm")
            for bpw in (2.0, 0.25)]


def _fmt(v: float) -> str:
    if v == 0:
        return "0"
    if v >= 100:
        return f"{v:,.0f}"
    if v >= 1:
        return f"{v:.2f}"
    return f"{v:.3g}"


def table(rows: list[dict]) -> str:
    """The scaling table in Markdown."""
    head = ("| preset | model | params | chips | tokens/s | ms/token | TTFT 500 (s) | J/token | of which static | "
            "power (W) | sim wall (s) |\n|---|---|---|---|---|---|---|---|---|---|---|\n")
    lines = []
    for r in rows:
        tag = "*" if r["derived_shape"] else ""
        lines.append(f"| {r['preset']} | {r['model']}{tag} | {r['params'] / 1e6:,.0f} M | {r['chips']} | "
                     f"{_fmt(r['tokens_per_s'])} | {_fmt(r['ms_per_token'])} | {_fmt(r['ttft_s'])} | "
                     f"{_fmt(r['j_per_token'])} | {r['energy_j']['static'] / r['j_per_token']:.0%} | "
                     f"{_fmt(r['power_w'])} | {r['decode_sim_wall_s']:.2f} |")
    return head + "\n".join(lines) + "\n"


def static_range_table(rows: list[dict]) -> str:
    """J/token of every row at the low, nominal and high static power of its preset's stated range."""
    head = ("| preset (boundary) | model | chips | static W/chip: low / nominal / high | J/token at low | at nominal | "
            "at high | static share low-high | dynamic J/token |\n|---|---|---|---|---|---|---|---|---|\n")
    lines = []
    for r in rows:
        dyn, (lo, hi) = r["dynamic_j_per_token"], r["static_range_j"]
        wl, wh = r["static_range_w_per_chip"]
        tag = "*" if r["derived_shape"] else ""
        lines.append(f"| {r['preset']} ({r['energy_boundary']}) | {r['model']}{tag} | {r['chips']} | "
                     f"{_fmt(wl)} / {_fmt(r['static_w_per_chip'])} / {_fmt(wh)} | {_fmt(dyn + lo)} | "
                     f"{_fmt(r['j_per_token'])} | {_fmt(dyn + hi)} | {lo / (dyn + lo):.0%}-{hi / (dyn + hi):.0%} | "
                     f"{_fmt(dyn)} |")
    return head + "\n".join(lines) + "\n"


def static_range_findings(rows: list[dict]) -> str:
    """What the static range changes, computed from the rows: the static share at the low end, whether the
    presets' order per model size moves between the ends, and how far apart the ends are."""
    ends = {"low": lambda r: r["dynamic_j_per_token"] + r["static_range_j"][0], "nominal": lambda r: r["j_per_token"],
            "high": lambda r: r["dynamic_j_per_token"] + r["static_range_j"][1]}
    moved = []
    for model in dict.fromkeys(r["model"] for r in rows):
        rs = [r for r in rows if r["model"] == model]
        orders = {e: " < ".join(r["preset"] for r in sorted(rs, key=f)) for e, f in ends.items()}
        if len(set(orders.values())) > 1:
            moved.append(f"{model} ({'; '.join(f'{e}: {o}' for e, o in orders.items())})")
    shares = [r["static_range_j"][0] / ends["low"](r) for r in rows]
    ratios = [ends["high"](r) / ends["low"](r) for r in rows]
    low = sorted((s, f"{r['preset']} {r['model']}") for s, r in zip(shares, rows))
    order = ("the presets keep their order at every model size" if not moved else
             "the presets keep their order except at " + ", ".join(moved))
    return (f"At the low end of every range static power is still {low[0][0]:.0%} ({low[0][1]}) to {low[-1][0]:.0%} of "
            f"a token's energy; with every preset at the same end of its range {order}; and a row's J/token is "
            f"{min(ratios):.1f}x to {max(ratios):.1f}x higher at the high end than at the low end, so until static "
            f"power is measured each energy is known only to within that factor.\n")


def _static_range_plot(rows: list[dict], out: Path, plt) -> Path:
    """J/token per preset against parameters: nominal line, the static range as a band, dynamic dotted."""
    fig, ax = plt.subplots(figsize=(5.2, 3.6), dpi=100)
    for p in dict.fromkeys(r["preset"] for r in rows):
        pts = [r for r in rows if r["preset"] == p]
        xs = [r["params"] for r in pts]
        line, = ax.plot(xs, [r["j_per_token"] for r in pts], "o-", label=p)
        ax.fill_between(xs, [r["dynamic_j_per_token"] + r["static_range_j"][0] for r in pts],
                        [r["dynamic_j_per_token"] + r["static_range_j"][1] for r in pts], color=line.get_color(), alpha=0.2)
        ax.plot(xs, [r["dynamic_j_per_token"] for r in pts], ":", color=line.get_color(), alpha=0.8)
    ax.fill_between([], [], [], color="grey", alpha=0.2, label="over the stated static range")
    ax.plot([], [], ":", color="grey", label="dynamic only")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("parameters")
    ax.set_ylabel("energy per token (J)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=6)
    fig.tight_layout()
    path = out / "scaling_static_range.png"
    fig.savefig(path)
    plt.close(fig)
    return path


def _plots(rows: list[dict], cpu: list[dict], gpus: list[dict], out: Path) -> list[Path]:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    presets = list(dict.fromkeys(r["preset"] for r in rows))

    def series(key, transform=lambda v: v):
        for p in presets:
            pts = [(r["params"], transform(r[key] if not callable(key) else key(r))) for r in rows if r["preset"] == p]
            yield p, [x for x, _ in pts], [y for _, y in pts]

    specs = [
        ("tokens_per_s", "decode tokens/s (batch 1)", "scaling_tokens_per_s.png", True),
        ("j_per_token", "energy per token (J)", "scaling_energy.png", True),
        ("chips", "chips needed", "scaling_chips.png", False),
        ("ttft_s", "time to first token, 500-token prompt (s)", "scaling_ttft.png", False),
        ("decode_sim_wall_s", "simulator wall time per decode token (s)", "scaling_sim_wall.png", False),
    ]
    for key, ylabel, name, with_base in specs:
        fig, ax = plt.subplots(figsize=(5.2, 3.6), dpi=100)
        colors = {}
        for p, xs, ys in series(key):
            line, = ax.plot(xs, ys, "o-", label=p + (" (estimate)" if any(r["estimate"] for r in rows if r["preset"] == p) else ""))
            colors[p] = line.get_color()
        if key == "j_per_token":
            for p, xs, ys in series("dynamic_j_per_token"):
                ax.plot(xs, ys, ":", color=colors[p], alpha=0.8)
            ax.plot([], [], ":", color="grey", label="same, dynamic only (no static)")
        if with_base:
            m = [c for c in cpu if not c.get("skipped")]
            if m:
                k = "tokens_per_s" if key == "tokens_per_s" else "energy_per_token_j"
                ax.plot([c["params"] for c in m], [c[k] for c in m], "ks--", label="CPU fp32, measured (energy est.)")
            for g, style in (("jetson-orin-nano", "g^--"), ("h100-sxm", "mv--")):
                pts = [x for x in gpus if x["gpu"] == g and x["bytes_per_weight"] == 2.0 and x["fits"]]
                params = [SCALES[x["model"]].params for x in pts]
                vals = [x["tokens_per_s"] if key == "tokens_per_s" else x["j_per_token_max"] for x in pts]
                ax.plot(params, vals, style, alpha=0.7, label=f"{g} fp16 roofline (analytic)")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("parameters")
        ax.set_ylabel(ylabel)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=6)
        fig.tight_layout()
        path = out / name
        fig.savefig(path)
        plt.close(fig)
        paths.append(path)
    paths.append(_static_range_plot(rows, out, plt))
    return paths


def write_outputs(rows: list[dict], cpu: list[dict], variants: list[dict], out: Path, plots: bool = True) -> list[Path]:
    """``scaling.json`` (with its provenance, written atomically), ``scaling_table.md`` and the PNGs under ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    gpus = gpu_rows()
    doc = {"rows": rows, "cpu": cpu, "gpu_roofline": gpus, "loihi2_variants": variants, "provenance": provenance()}
    paths = [out / "scaling.json", out / "scaling_table.md"]
    write_json(paths[0], doc)
    paths[1].write_text(table(rows))
    if plots:
        paths += _plots(rows, cpu, gpus, out)
    return paths


def _run(args) -> int:
    scales = [s.strip() for s in args.scales.split(",") if s.strip()]
    for s in scales:
        if s not in SCALES:
            raise ValueError(f"unknown scale {s!r}: choose from {', '.join(SCALES)}")
    presets = [p.strip() for p in args.presets.split(",") if p.strip()]
    partial = Path(args.out) / "scaling.partial.json"
    rows = run_scaling(presets, scales, partial=partial)
    cpu = cpu_baselines(scales) if args.cpu else []
    variants = compare_loihi2() if args.compare else []
    for p in write_outputs(rows, cpu, variants, Path(args.out), plots=not args.no_plots):
        print(p)
    partial.unlink(missing_ok=True)
    print(table(rows))
    return 0


def register(subparsers) -> None:
    """Add the ``scaling`` subcommand."""
    p = subparsers.add_parser("scaling", help="125M .. 13B on each preset: chips, tokens/s, J/token, TTFT",
                              description=__doc__.split("\n\n")[0])
    p.add_argument("--presets", default=",".join(DEFAULT_PRESETS), help="comma-separated presets")
    p.add_argument("--scales", default=",".join(SCALES), help="comma-separated model scales")
    p.add_argument("--out", default="docs/system_model", help="output folder (default docs/system_model)")
    p.add_argument("--cpu", action="store_true", help="also measure the PyTorch CPU baseline (1 thread)")
    p.add_argument("--compare", action="store_true", help="also run the Loihi 2 variants for 370M")
    p.add_argument("--no-plots", action="store_true")
    p.set_defaults(func=_run)
