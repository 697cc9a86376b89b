"""``nmllm docs``: write every generated table of README.md and docs/ from the committed JSON records.

A generated region is the text between ``<!-- nmllm-docs:NAME -->`` and ``<!-- /nmllm-docs:NAME -->`` in
README.md or a page under docs/; ``NAME`` is a key of :data:`REGIONS`, a function that reads committed records
(``bench/results/*.json``, ``docs/**/*.json``, ``models/bundled*/perplexity_*.json``) and returns the Markdown.
:data:`FILES` are pages generated whole. ``nmllm docs`` rewrites them all; ``nmllm docs --check`` writes nothing
and exits 1 naming every region whose committed text differs from what it would write (the drift test).
A results table whose record is not committed yet stays outside the regions and is listed, with the record it
waits for, in ``tests/test_docs.py`` (whose lint fails on any other table with numbers outside a region).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import statistics
import sys
from pathlib import Path

__all__ = ["FILES", "REGIONS", "check", "pages", "register", "render", "unmarked_tables", "write"]

ROOT = Path(__file__).resolve().parent.parent
#: A region: its markers each on a line of their own (a marker quoted inside a sentence is not one).
MARKER = re.compile(r"^<!-- nmllm-docs:([\w-]+) -->\n(.*?)^<!-- /nmllm-docs:\1 -->$", re.S | re.M)
OPEN = re.compile(r"^<!-- (/?)nmllm-docs:([\w-]+) -->$", re.M)


# ---------------------------------------------------------------------------------------------------- records

def _json(root: Path, rel: str):
    path = root / rel
    if not path.is_file():
        raise FileNotFoundError(f"record {rel} is missing; rerun the command that writes it (see its page)")
    return json.loads(path.read_text())


def _bench(root: Path, name: str) -> list[dict]:
    return _json(root, f"bench/results/{name}.json")


def _all(records: list[dict], **match) -> list[dict]:
    """The records whose fields hold every ``match`` value (``case`` and ``baseline``: as a substring)."""
    return [r for r in records
            if all((v in r[k]) if k in ("case", "baseline") else r[k] == v for k, v in match.items())]


def _one(records: list[dict], **match) -> dict:
    """The one record :func:`_all` finds for ``match``."""
    found = _all(records, **match)
    if len(found) != 1:
        raise ValueError(f"{len(found)} records match {match} in {records[0]['benchmark'] if records else '?'}")
    return found[0]


# ----------------------------------------------------------------------------------------------- formatting

def _f(v: float, nd: int = 0) -> str:
    """Fixed point with thousands separators."""
    return f"{v:,.{nd}f}"


def _g(v: float, n: int = 3) -> str:
    """``n`` significant digits (trailing zeros kept), thousands separators from ``10**n`` on."""
    if abs(v) >= 10 ** n:
        return _f(v)
    return f"{v:#.{n}g}".rstrip(".")


def _e(v: float, n: int = 4) -> str:
    """``n`` significant digits in ``2.867e6`` notation."""
    mant, exp = f"{v:.{n - 1}e}".split("e")
    return f"{mant}e{int(exp)}"


def _m(v: float) -> str:
    """A count in millions with two decimals (``2.96 M``)."""
    return f"{v / 1e6:.2f} M"


def _pct(v: float, nd: int = 0) -> str:
    return f"{100 * v:.{nd}f} %"


def _table(head: list[str], rows: list[list[str]]) -> str:
    """A Markdown table; a ``|`` inside a cell is escaped (GitHub reads ``\\|`` as ``|``, in code spans too)."""
    cell = lambda c: c.replace("|", "\\|")  # noqa: E731
    lines = ["| " + " | ".join(map(cell, head)) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(map(cell, r)) + " |" for r in rows]
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------------------- README regions

def bundled_perplexity(root: Path) -> str:
    """The bundled model's WikiText-2 test perplexity per executor (``models/bundled/perplexity_*.json``)."""
    runs = [("float QAT view", "float", "perplexity_wikitext2_test.json"),
            ("integer program, torch integer view", "integer", "perplexity_wikitext2_test_integer.json"),
            ("integer program, Numba golden model", "golden", "perplexity_wikitext2_test_golden.json")]
    recs = [_json(root, f"models/bundled/{name}") for _, _, name in runs]
    integer = recs[1]
    rows = []
    for (label, engine, _), r in zip(runs, recs):
        note = ""
        if engine == "golden":
            same = "identical total NLL to the integer view" if r["nll"] == integer["nll"] else "total NLL differs"
            note = f"; {same}, {_f(r['seconds'])} s"
        rows.append([f"{label} (`--engine {engine}`{note})", f"{r['token_ppl']:.2f}", _f(r["word_ppl"], 1),
                     f"{r['bits_per_byte']:.3f}"])
    head = (f"WikiText-2 test ({_f(integer['tokens'])} tokens, {_f(integer['words'])} words; window "
            f"{integer['window']}, stride {integer['stride']}):\n\n")
    return head + _table(["executor", "token ppl", "word ppl", "bits/byte"], rows)


def headline(root: Path) -> str:
    """The README's headline: quality, bit-exactness and cost per token, each from its record."""
    ppl = {e: _json(root, f"models/bundled/perplexity_wikitext2_test{s}.json")
           for e, s in (("float", ""), ("integer", "_integer"), ("golden", "_golden"))}
    same = "identical total NLL" if ppl["golden"]["nll"] == ppl["integer"]["nll"] else "total NLL DIFFERS"
    rows = [["bundled MatMul-free LM (5.9 M), WikiText-2 test token perplexity: float / integer program / golden model",
             f"{ppl['float']['token_ppl']:.2f} / {ppl['integer']['token_ppl']:.2f} / {ppl['golden']['token_ppl']:.2f} "
             f"({same})", "`models/bundled/perplexity_wikitext2_test*.json`"]]
    dense = root / "docs/spike_conversion/ppl_dense_full.json"
    if dense.is_file():
        d = json.loads(dense.read_text())
        rows.append([f"SmolLM2-135M dense, WikiText-2 test token perplexity ({_f(d['tokens'])} tokens)",
                     f"{d['token_ppl']:.2f}", "`docs/spike_conversion/ppl_dense_full.json`"])
    for name, label in (("rouge_dense_200", "dense"), ("rouge_bitplane8_channel_200", "bit-plane spikes, T=8")):
        path = root / f"docs/spike_conversion/{name}.json"
        if path.is_file():
            r = json.loads(path.read_text())
            rows.append([f"SmolLM2-135M {label}, ROUGE-1 / 2 / Lsum on the first {r['n_articles']} CNN/DailyMail "
                         "test articles", f"{r['rouge1']:.2f} / {r['rouge2']:.2f} / {r['rougeLsum']:.2f}",
                         f"`docs/spike_conversion/{name}.json`"])
    rtl = _bench(root, "rtl_sim")
    units = sorted({r["case"].split()[0] for r in rtl if r["metric"] == "simulated_cycles_per_s"})
    rows.append(["RTL units checked word for word against the golden model on Verilator and Icarus",
                 ", ".join(units), "`bench/results/rtl_sim.json`"])
    acc = {(r["config"]["hidden"], r["simulator"]): r for n in ("tiny", "bundled")
           for r in _json(root, f"docs/accelerator/{n}.json")["runs"] if r["passed"]}
    if (256, "verilator") in acc and (16, "icarus") in acc:
        b = acc[(256, "verilator")]["phases"]["load_and_generate"]
        rows.append(["Whole-model accelerator RTL generating greedy tokens, every token and logit word equal to the "
                     "golden model: cycles per token of the bundled model (Verilator; a tiny model on both simulators)",
                     _f(b["cycles_token"]), "`docs/accelerator/bundled.json`, `tiny.json`"])
    for preset in ("loihi2-estimate", "loihi1"):
        rel = f"docs/system_model/simulate_370m_{preset}.json"
        r = _json(root, rel)
        label = (" (estimated constants, graded spikes)" if "estimate" in preset
                 else " (published per-event constants, binary spikes; static power and x86 costs estimated)")
        rows.append([f"370M shape on {r['chips']} x {preset}{label}, system model on the bundled model's measured "
                     f"densities: tokens/s, mJ/token = static ({r['energy_boundary']} boundary) + dynamic",
                     f"{r['tokens_per_s']:.1f}, {r['energy_per_token_j'] * 1e3:.1f} = {r['static_j'] * 1e3:.1f} + "
                     f"{r['dynamic_j'] * 1e3:.1f}", f"`{rel}`"])
    return _table(["what", "measured", "record"], rows)


def mixers(root: Path) -> str:
    """MLGRU vs spike attention at equal budget: training log, full-test perplexity, events, system model."""
    mix = {r["row"]: r for r in _json(root, "docs/ablation/mixers.json")["rows"]}
    rows = []
    for label, model, key in (("MLGRU (`models/bundled`)", "bundled", "MLGRU"),
                              ("spike attention (`models/bundled_spike_attention`)", "bundled_spike_attention",
                               "spike attention")):
        log = (root / f"models/{model}/train_log.jsonl").read_text().splitlines()
        val = next(json.loads(ln)["val_loss"] for ln in reversed(log) if "val_loss" in ln)
        flt = _json(root, f"models/{model}/perplexity_wikitext2_test.json")
        gold = _json(root, f"models/{model}/perplexity_wikitext2_test_golden.json")
        r = mix[key]
        e = r["event_detail"]
        dash = lambda v, f: f(v) if v else "–"  # noqa: E731
        rows.append([label, f"{val:.3f}", f"{flt['token_ppl']:.2f}", f"{gold['token_ppl']:.2f}", _m(e["synaptic_ops"]),
                     dash(e["attention_ops"], lambda v: f"{v / 1e3:.0f} k"), dash(e["spikes"], _f),
                     _f(e["state_updates"]),
                     f"{r['energy_per_token_j'] * 1e3:.2f} mJ ({r['dynamic_energy_per_token_j'] * 1e6:.1f} µJ)",
                     f"{r['token_latency_s'] * 1e3:.2f} ms"])
    return _table(["mixer", "val loss", "WikiText-2 test ppl, float view", "integer program (golden)",
                   "synaptic ops / token", "spike-gated adds / token", "spikes / token", "state cells updated / token",
                   "energy / token (dynamic part)", "latency / token"], rows)


def _pruning_rows(root: Path):
    return _json(root, "docs/pruning/pruning_sweep.json")["sweep"]


def pruning_summary(root: Path) -> str:
    """README: uniform pruning at 0 / 0.1 / 0.3 and adaptive at 0.5 (``docs/pruning/pruning_sweep.json``)."""
    sweep = _pruning_rows(root)
    pick = lambda alloc, s: next(r for r in sweep if r["allocation"] == alloc and abs(r["target"] - s) < 1e-9)  # noqa: E731
    rows = []
    for alloc, s in (("uniform", 0.0), ("uniform", 0.1), ("uniform", 0.3), ("adaptive", 0.5)):
        r = pick(alloc, s)
        sys_ = r["system"]["loihi2-estimate"]
        wiki, news = f"{r['ppl']['wikipedia']:.1f}", f"{r['ppl']['news']:.1f}"
        label = f"{s:g}"
        if alloc == "adaptive":
            u = pick("uniform", s)
            label += " (adaptive per layer)"
            wiki += f" (uniform {u['ppl']['wikipedia']:.1f})"
            news += f" (uniform {u['ppl']['news']:.1f})"
        rows.append([label, wiki, news, _m(r["events_per_token"]["synaptic_ops"]),
                     f"{sys_['energy_per_token_j'] * 1e3:.2f} mJ", f"{sys_['token_latency_s'] * 1e3:.2f} ms"])
    return _table(["pruned (uniform)", "ppl WikiText-2", "ppl news", "synaptic ops / token", "energy / token",
                   "latency / token"], rows)


def _beam_rows(root: Path, rel: str = "docs/beam_search/results.json") -> list[dict]:
    return _json(root, rel)["rows"]


def _rouge(r: dict) -> str:
    return f"{r['rouge1']:.2f} / {r['rouge2']:.2f} / {r['rougeLsum']:.2f}"


def beam_summary(root: Path) -> str:
    """README: the decoders on 500 articles (``docs/beam_search/results.json``; T = 8 is in the docs page)."""
    rows = []
    for r in _beam_rows(root):
        name = r["decoder"]
        if name.endswith("T=8"):
            continue
        label = {"lead-3 (extractive)": "lead-3 (extractive reference)", "beam k=4": "beam search, k = 4"}.get(
            name, name.replace("spike beam k=4 T=", "spike beam search, k = 4, T = "))
        ev = f"{r['events_per_token'] / 1e6:.2f} M" if "events_per_token" in r else "–"
        saved = _pct(r["neuron_steps_saved_fraction"]) if "neuron_steps_saved_fraction" in r else "–"
        rows.append([label, _rouge(r), ev, saved])
    return _table(["decoder", "ROUGE-1 / 2 / Lsum", "events / generated token", "output-neuron steps saved"], rows)


def ablation(root: Path) -> str:
    """The ablation table, written by :func:`experiments.ablation.table` from ``docs/ablation/ablation.json``."""
    from experiments.ablation import table

    return table(_json(root, "docs/ablation/ablation.json")) + "\n"


def ablation_md(root: Path) -> str:
    """``docs/ablation/ablation.md``: the mixer and ablation tables as ``nmllm ablation`` writes them."""
    from experiments.ablation import mixer_table, table

    return (mixer_table(_json(root, "docs/ablation/mixers.json")) + "\n\n"
            + table(_json(root, "docs/ablation/ablation.json")) + "\n")


YOSYS_UNITS = ("ternary_matvec", "ternary_core", "elementwise", "neurocore_top", "spike_attention")


def yosys(root: Path) -> str:
    """Yosys ``synth_xilinx -family xcup`` cells per unit (``bench/results/yosys.json``)."""
    recs = _bench(root, "yosys")
    rows = []
    for unit in YOSYS_UNITS:
        mine = [r for r in recs if r["case"].split()[0] == unit]
        if not mine:
            continue
        cells = {r["metric"]: r["value"] for r in mine}
        config = mine[0]["case"][len(unit):].split("(")[0].strip()
        rows.append([f"{unit} ({config})", *(_f(cells[k]) for k in ("LUT", "FF", "DSP", "BRAM36"))])
    return _table(["unit (configuration)", "LUT", "FF", "DSP", "BRAM36"], rows)


def system_370m(root: Path) -> str:
    """370M, one decode token, on every preset (``docs/system_model/scaling.json``)."""
    rows = [r for r in _json(root, "docs/system_model/scaling.json")["rows"] if r["model"] == "370m"]
    cols = [r["preset"] for r in rows]
    fmt = lambda v: _f(v) if v >= 100 else f"{v:.1f}" if v >= 10 else f"{v:.2f}"  # noqa: E731
    body = [["chips", *(str(r["chips"]) for r in rows)],
            ["tokens/s", *(fmt(r["tokens_per_s"]) for r in rows)],
            ["mJ/token (static share)", *(f"{fmt(r['j_per_token'] * 1e3)} ({r['energy_j']['static'] / r['j_per_token']:.0%})"
                                          for r in rows)]]
    return _table(["370M, one decode token", *cols], body)


def _ratio(v: float) -> str:
    return f"{v:.2f}×" if v < 10 else f"{v:.1f}×"


def benchmarks(root: Path) -> str:
    """The README's benchmark table: one line per benchmark, from ``bench/results/*.json``."""
    rows = []
    g = _bench(root, "golden")
    dec = _all(g, metric="decode_tokens_per_s")
    tok = dec[0]["value"]
    rows.append(["`golden`", "370M shape, decode, batch 1, 1 thread", f"{tok:.1f} tokens/s ({1e3 / tok:.1f} ms)",
                 "; ".join(f"{r['baseline']}: {r['baseline_value']:.1f} tokens/s" for r in dec),
                 " / ".join(_ratio(r["ratio"]) for r in dec)])
    fl = _one(g, metric="decode_ms_per_token")
    packed = _one(g, metric="resident_bytes")["baseline_value"]
    rows.append(["`golden`", "370M shape, bandwidth floor",
                 f"{fl['baseline_value']:.2f} ms/token ({packed / 1e6:.0f} MB packed / "
                 f"{packed / fl['baseline_value'] / 1e6:.1f} GB/s)", f"golden {fl['value']:.1f} ms",
                 f"{_pct(1 / fl['ratio'], 1)} of floor speed"])
    for r in (r for r in g if r["metric"].startswith("decode_tokens_per_s_") and r["metric"].endswith("_threads")):
        n = r["metric"].split("_")[-2]
        rows.append(["`golden`", f"370M shape, decode, batch 1, {n} threads", f"{r['value']:.1f} tokens/s",
                     f"{r['baseline']}: {r['baseline_value']:.1f} tokens/s", _ratio(r["ratio"])])
    for metric, what in (("giga_ternary_macs_per_s_per_core", "370M shape, giga ternary MACs/s per core"),
                         ("weight_bytes", "370M shape, weight bytes held (bit-sliced)")):
        for r in _all(g, metric=metric):
            fmt = (lambda v: f"{v / 1e6:.1f} MB") if r["unit"] == "B" else (lambda v: f"{v:.1f} {r['unit']}")  # noqa: E731
            rows.append(["`golden`", what, fmt(r["value"]), f"{r['baseline']}: {fmt(r['baseline_value'])}",
                         _ratio(r["ratio"])])
    for r in _all(_bench(root, "golden_eval"), metric="forward_tokens_per_s"):
        rows.append(["`golden_eval`", r["case"], f"{r['value']:.0f} tokens/s",
                     f"{r['baseline']}: {r['baseline_value']:.0f} tokens/s", _ratio(r["ratio"])])
    lay = _all(g, metric="layer_tokens_per_s", baseline="0% zero")
    i8 = _all(g, metric="layer_tokens_per_s", baseline="int8")
    rows.append(["`golden`", "one 370M layer at 0 / 50 / 90 % zero inputs",
                 " / ".join(f"{r['value']:.1f}" for r in lay) + " tokens/s",
                 f"0 % zeros; {i8[0]['baseline']}: {i8[0]['baseline_value']:.1f} tokens/s",
                 " / ".join(_ratio(r["ratio"]) for r in lay) + "; vs int8: "
                 + " / ".join(_ratio(r["ratio"]) for r in i8)])
    tm = _bench(root, "ternary_matvec")
    for base in dict.fromkeys(r["baseline"] for r in tm):
        rs = _all(tm, baseline=base)
        rows.append(["`ternary_matvec`", "1024×1024 at 0 / 50 / 90 % zero activations, 1 thread",
                     " / ".join(f"{1e6 / r['value']:.0f}" for r in rs) + " µs",
                     f"{base}: " + " / ".join(f"{1e6 / r['baseline_value']:.0f}" for r in rs) + " µs",
                     " / ".join(_ratio(r["ratio"]) for r in rs)])
    kb = _all(_bench(root, "kernels_bitsliced"), metric="matvecs_per_s")
    for base in dict.fromkeys(r["baseline"] for r in kb):
        rs = _all(kb, baseline=base)
        shapes = [re.search(r"(\d+)x(\d+), (\d+)% zero", r["case"]).groups() for r in rs]
        rows.append(["`kernels_bitsliced`", "bit-sliced kernel, 370M matrices "
                     + " / ".join(f"{o}×{i}" + (f" at {z} % zeros" if z != "0" else "") for o, i, z in shapes)
                     + ", 1 thread", " / ".join(f"{1e6 / r['value']:.0f}" for r in rs) + " µs",
                     f"{base}: " + " / ".join(f"{1e6 / r['baseline_value']:.0f}" for r in rs) + " µs",
                     " / ".join(_ratio(r["ratio"]) for r in rs)])
    rs = _all(_bench(root, "rtl_sim"), metric="simulated_cycles_per_s")
    span = lambda vals, f: f"{f(min(vals))}–{f(max(vals))}"  # noqa: E731
    rows.append(["`rtl_sim`", f"simulated cycles/s, {len(rs)} testbenches (range)",
                 "Verilator " + span([r["value"] for r in rs], _f), "Icarus " + span([r["baseline_value"] for r in rs], _f),
                 span([r["ratio"] for r in rs], lambda v: f"{v:.1f}") + "×"])
    nc = _bench(root, "neurocore")
    cyc = {c: _one(nc, case=c, metric="cycles_per_token")["value"]
           for c in ("tiny_d32_m64_p4 one", "bundled_d256_m640_p8", "370m_d1024")}
    rows.append(["`neurocore`", "one layer, RTL layer top (Verilator, CYCLES register)",
                 "tiny {} / bundled layer 0 {} / 370M {} cycles per token".format(*map(_f, cyc.values())), "", ""])
    v = _one(nc, metric="tokens_per_s")
    rows.append(["`neurocore`", "370M whole model on a VCK190 at 200 MHz (derived from the simulated layer)",
                 f"{v['value']:.1f} tokens/s", f"DDR4 bandwidth floor {v['baseline_value']:.0f} tokens/s", ""])
    ys = _bench(root, "yosys")
    lut = lambda u, m="LUT": _one(ys, case=u + " ", metric=m)["value"]  # noqa: E731
    rows.append(["`yosys`", "per unit (`synth_xilinx -family xcup`, an estimate, not Vivado)",
                 f"ternary_matvec {_f(lut('ternary_matvec'))} LUT / {_f(lut('ternary_matvec', 'FF'))} FF / "
                 f"{_f(lut('ternary_matvec', 'BRAM36'))} BRAM36; ternary_core {_f(lut('ternary_core'))} LUT; "
                 f"elementwise {_f(lut('elementwise'))} LUT", "", ""])
    tr = _all(_bench(root, "training"), case="1 thread")
    rows.append(["`training`", "bundled model, 1 thread: train / eval / decode",
                 " / ".join(_f(r["value"]) for r in tr) + " tokens/s",
                 "plain fp32 " + " / ".join(_f(r["baseline_value"]) for r in tr),
                 " / ".join(f"{r['ratio']:.2f}" for r in tr)])
    ss = _bench(root, "system_sim")
    w = [_one(ss, case=m + " on", metric="sim_wall_s_per_decode_token")["value"] for m in ("370m", "13b")]
    rows.append(["`system_sim`", "wall time to simulate one decode token, 370M / 13B",
                 f"{w[0]:.3f} s / {w[1]:.2f} s (goals ≤ 1 s / ≤ 30 s)", "closed-form estimate", ""])
    cb = _one(_bench(root, "crossbar"), case="batches of 256", metric="mvms_per_s")
    rows.append(["`crossbar`", "256×256 tile, all effects on, batches of 256", f"{_f(cb['value'])} MVMs/s",
                 f"ideal mode {_f(cb['baseline_value'])} MVMs/s", f"{cb['ratio']:.2f}"])
    sw = _one(_bench(root, "sweep"), case="1 worker", metric="wall_time")
    pps = _one(_bench(root, "sweep"), case="1 worker", metric="points_per_s")["value"]
    rows.append(["`sweep`", "1,000-point 370M system-only sweep, 1 worker", f"{sw['value']:.0f} s ({pps:.1f} points/s)",
                 f"goal {sw['baseline_value']:.0f} s", f"{sw['ratio']:.2f}"])
    sp = _bench(root, "spike")
    sel = [_one(sp, metric=m) for m in ("int8 weights, dense activations: forward tokens/s",
                                        "rate T=8 (closed form): forward tokens/s",
                                        "bitplane T=8 (closed form): forward tokens/s")]
    rows.append(["`spike`", "SmolLM2-135M, forward tokens/s: int8 / rate T=8 / bit-plane T=8",
                 " / ".join(f"{r['value']:.1f}" for r in sel), f"dense fp32 {sel[0]['baseline_value']:.1f}",
                 " / ".join(f"{r['ratio']:.2f}" for r in sel)])
    sa = _bench(root, "spike_attention")
    per_layer = [r for r in _all(sa, metric="cycles_per_token") if r["case"].startswith("layer")]
    cy = [r["value"] for r in per_layer]
    rows.append(["`spike_attention`", f"RTL unit, trained model's real spikes (head 0, {len(per_layer)} layers)",
                 f"{_f(min(cy))}–{_f(max(cy))} cycles/token", f"no event skipping {_f(per_layer[0]['baseline_value'])}",
                 f"{min(r['ratio'] for r in per_layer):.2f}–{max(r['ratio'] for r in per_layer):.2f}"])
    s = _one(sa, metric="simulated_cycles_per_s")
    rows.append(["`spike_attention`", "simulated cycles/s, dh 64 head", f"Verilator {_f(s['value'])}",
                 f"Icarus {_f(s['baseline_value'])}", _ratio(s["ratio"])])
    c = _one(_bench(root, "cli"), metric="wall_s")
    rows.append(["`cli`", "`nmllm --help`, median of 5", f"{c['value']:.2f} s", f"importing the libraries "
                 f"{c['baseline_value']:.2f} s", f"{c['ratio']:.3f}"])
    return (_table(["benchmark", "case", "value", "baseline (same run)", "ratio"], rows) + "\n"
            + _faster_than(tm, "`ternary_matvec` (event-driven kernel)")
            + _faster_than(i8, "`golden`, one layer (bit-sliced kernel, with its front end)") + "\n" + _machines(root))


def _faster_than(records: list[dict], what: str) -> str:
    """One line per baseline: at which of the cases ``what`` is faster (ratio > 1)."""
    lines = []
    for base in dict.fromkeys(r["baseline"] for r in records):
        won = [re.search(r"(\d+)% zero", r["case"])[1] + " %" for r in records if r["baseline"] == base and r["ratio"] > 1]
        name = base.split(" (")[0]
        if name.startswith("extra, weak: "):
            name = name[len("extra, weak: "):] + " (the weak extra)"
        lines.append(f"- {what} is faster than {name} at "
                     + (", ".join(won) + " zero activations" if won else "none of the measured sparsities") + ".\n")
    return "".join(lines)


def _machines(root: Path) -> str:
    """Which machine, when and at what load each benchmark file was measured (from the records' provenance)."""
    lines = []
    for path in sorted((root / "bench" / "results").glob("*.json")):
        p = json.loads(path.read_text())[0]["provenance"]
        load = f", load average {p['load_average'][0]:.1f}" if p.get("load_average") else ""
        how = " (provenance reconstructed from git)" if p.get("backfilled") else ""
        lines.append(f"`{path.stem}` {p['date'][:10]}, {p['machine'].split(',')[0]}{load}{how}")
    return "Measured: " + "; ".join(lines) + ".\n"


def test_suite(root: Path) -> str:
    """The test count and pytest time of the last ``.ci/run`` (``bench/results/test_suite.json``)."""
    recs = _bench(root, "test_suite")
    passed, wall = _one(recs, metric="tests_passed"), _one(recs, metric="pytest_wall_s")
    where = ", ".join(passed["provenance"]["machine"].split(", ")[:2])
    return (f"{_f(passed['value'])} of {_f(passed['baseline_value'])} tests passed in {_f(wall['value'])} s of pytest "
            f"({passed['provenance']['date'][:10]}, {where}; `bench/results/test_suite.json`)\n")


# --------------------------------------------------------------------------------------------- docs regions

def scaling(root: Path) -> str:
    """docs/system_model.md: the scaling table, by :func:`experiments.scaling.table`."""
    from experiments.scaling import table

    return table(_json(root, "docs/system_model/scaling.json")["rows"])


def scaling_static_range(root: Path) -> str:
    """docs/system_model.md: J/token over each preset's stated static range, by
    :func:`experiments.scaling.static_range_table`."""
    from experiments.scaling import static_range_findings, static_range_table

    rows = _json(root, "docs/system_model/scaling.json")["rows"]
    return static_range_table(rows) + "\n**What moves across the range:** " + static_range_findings(rows)


def scaling_baselines(root: Path) -> str:
    """docs/system_model.md: CPU measured, GPU analytic rooflines (``scaling.json``)."""
    data = _json(root, "docs/system_model/scaling.json")
    models = [c["model"] for c in data["cpu"]]
    cpu = {c["model"]: c for c in data["cpu"]}

    def gpu(name, m):
        r = next(g for g in data["gpu_roofline"] if g["gpu"] == name and g["model"] == m and g["bytes_per_weight"] == 2.0)
        if not r["fits"]:
            return "does not fit (8 GB)" if name == "jetson-orin-nano" else "does not fit"
        j = (f"{_g(r['j_per_token_min'])}–{_g(r['j_per_token_max'])}" if r["j_per_token_min"] != r["j_per_token_max"]
             else _g(r["j_per_token_min"]))
        return f"{_g(r['tokens_per_s'])}; {j}"
    rows = [["PyTorch CPU, dense fp32, 1 thread, **measured** (tokens/s)",
             *(_g(cpu[m]["tokens_per_s"]) if not cpu[m].get("skipped") else f"skipped ({cpu[m]['skipped']})" for m in models)],
            ["same, J/token (**estimate**: RAPL not readable, 5 W per busy core)",
             *(_g(cpu[m]["energy_per_token_j"]) if not cpu[m].get("skipped") else "–" for m in models)],
            ["Jetson Orin Nano fp16, **analytic roofline** (tokens/s; J/token at 7–15 W)",
             *(gpu("jetson-orin-nano", m) for m in models)],
            ["H100 SXM fp16, **analytic roofline** (tokens/s; J/token at 700 W)", *(gpu("h100-sxm", m) for m in models)]]
    return _table(["baseline", *(m.upper() for m in models)], rows)


def loihi2_variants(root: Path) -> str:
    """docs/system_model.md: 370M on ``loihi2-estimate`` with one assumption changed at a time."""
    rows = [[v["variant"], str(v["chips"]), f"{v['tokens_per_s']:.1f}", f"{v['ms_per_token']:.1f}", f"{v['ttft_s']:.3f}",
             f"{v['j_per_token'] * 1e3:.1f}", f"{v['dynamic_j_per_token'] * 1e3:.2f}", f"{v['power_w']:.2f}"]
            for v in _json(root, "docs/system_model/scaling.json")["loihi2_variants"]]
    return _table(["variant", "chips", "tokens/s", "ms/token", "TTFT 500 (s)", "mJ/token", "dynamic mJ/token",
                   "power (W)"], rows)


def system_sim(root: Path) -> str:
    """docs/system_model.md: SimPy wall time per decode token (``bench/results/system_sim.json``)."""
    recs = _bench(root, "system_sim")
    goals = {"370m": "≤ 1 s", "13b": "≤ 30 s"}
    rows = []
    for r in _all(recs, metric="sim_wall_s_per_decode_token"):
        m = re.match(r"(\S+) on \d+ x \S+, (\d+) cores, (\d+) messages", r["case"])
        lat = _one(recs, case=r["case"], metric="simulated_token_latency_s")
        rows.append([m[1].upper(), _f(int(m[2])), _f(int(m[3])), _g(r["value"]), goals.get(m[1], "–"), f"{lat['ratio']:.2f}"])
    return _table(["model", "cores", "messages/token", "SimPy wall (s)", "goal", "simulated / analytic token latency"],
                  rows)


def system_activity(root: Path) -> str:
    """docs/system_model.md: measured densities per stage kind (``activity_bundled.json``) and what a token
    costs on them, static and dynamic apart (``simulate_*.json``)."""
    a = _json(root, "docs/system_model/activity_bundled.json")
    span = lambda kind, key: [v[key] for n, v in a["stages"].items() if n.split(".")[-1] == kind]  # noqa: E731
    rng = lambda kind, key, fmt: (f" ({fmt(min(span(kind, key)))}–{fmt(max(span(kind, key)))} over layers)"  # noqa: E731
                                  if kind != "lm_head" else "")
    pc = lambda v: _pct(v, 1)  # noqa: E731
    rows = [[f"`{k}`", pc(a["input_nonzero"][k]) + rng(k, "input_nonzero", pc), pc(a["weight_density"][k])
             + rng(k, "weight_density", pc), f"{a['bit_spikes_per_event'][k]:.2f}"] for k in a["input_nonzero"]]
    out = (f"Measured on `models/bundled`, {_f(a['tokens'])} tokens of WikiText-2 test "
           f"(`docs/system_model/activity_bundled.json`):\n\n"
           + _table(["stage kind", "activation density", "weight density", "bit spikes per input event"], rows))
    sims = []
    for model, preset, note in (("bundled", "loihi1", ""), ("bundled", "loihi2-estimate", ""), ("370m", "loihi1", ""),
                                ("370m", "loihi1_synop-35.5pJ", ", SANA-FE's 35.5 pJ synaptic op"),
                                ("370m", "loihi2-estimate", "")):
        r = _json(root, f"docs/system_model/simulate_{model}_{preset}.json")
        fmt = "binary spikes, non-linear on x86" if preset.startswith("loihi1") else "graded spikes, non-linear in neurocores"
        lo, hi = (v * 1e3 for v in r["static_range_j"])
        sims.append([model, f"{r['preset']} ({fmt}{note})", _f(r["chips"]), _g(r["tokens_per_s"]),
                     f"{_g(r['static_j'] * 1e3)} ({_g(lo)}–{_g(hi)}; {r['energy_boundary']})", _g(r["dynamic_j"] * 1e3),
                     "per stage" if "per-kind averages" not in r["activity_source"] else "per-kind averages"])
    return out + "\nOne decode token on these densities (`docs/system_model/simulate_<model>_<preset>.json`):\n\n" + _table(
        ["model", "preset", "chips", "tokens/s", "static mJ/token (over the stated range; boundary)", "dynamic mJ/token",
         "densities"], sims)


def sweep_bench(root: Path) -> str:
    """docs/sweep.md: the 1,000-point sweep's wall time per worker count (``bench/results/sweep.json``)."""
    recs = _bench(root, "sweep")
    rows = []
    for r in _all(recs, metric="wall_time"):
        workers = re.search(r"(\d+) worker", r["case"])[1]
        pps = _one(recs, case=r["case"], metric="points_per_s")["value"]
        rows.append([workers, f"{r['value']:.1f}", f"{pps:.2f}",
                     f"≤ {r['baseline_value']:.0f} s: {'met' if r['value'] <= r['baseline_value'] else 'missed'}"])
    return _table(["workers", "wall time (s)", "points/s", "goal"], rows)


def crossbar_bench(root: Path) -> str:
    """docs/crossbar.md: every record of ``bench/results/crossbar.json``."""
    def val(v, unit):
        return f"{_g(v, 3)} {unit}"
    rows = [[r["case"], val(r["value"], r["unit"]), f"{r['baseline']}: {val(r['baseline_value'], r['unit'])}",
             _g(r["ratio"], 3)] for r in _bench(root, "crossbar")]
    return _table(["case", "value", "baseline (same run)", "ratio"], rows)


def crossbar_rtl(root: Path) -> str:
    """docs/crossbar.md: the RTL tile's measured cycles per MVM against its formula, and its periphery's Yosys
    cells (``bench/results/crossbar_rtl.json``)."""
    recs = _bench(root, "crossbar_rtl")
    rows = [[r["case"].split(" ", 1)[1], _f(r["baseline_value"]), _f(r["value"]),
             ", ".join(_f(i["value"]) for i in _all(recs, case=r["case"], metric="mvm_cycles_icarus")) or "not run"]
            for r in _all(recs, metric="mvm_cycles_verilator")]
    cells: dict[str, dict] = {}
    for r in recs:
        if r["metric"] in ("LUT", "FF", "CARRY", "DSP"):
            cells.setdefault(r["case"].split(" ", 1)[1].split(" periphery")[0], {})[r["metric"]] = r["value"]
    return (_table(["configuration", "formula (cycles)", "Verilator (measured)", "Icarus (measured)"], rows) + "\n"
            + _table(["periphery of (array black-boxed)", "LUT", "FF", "CARRY", "DSP"],
                     [[k, *(_f(v[m]) for m in ("LUT", "FF", "CARRY", "DSP"))] for k, v in cells.items()]))


def crossbar_knobs(root: Path) -> str:
    """docs/crossbar.md: one knob at a time from the base (``docs/crossbar/perplexity_sweep.json``)."""
    data = _json(root, "docs/crossbar/perplexity_sweep.json")
    digital = data["digital"]["token_ppl"]
    rows = []
    for key, label, show in (("adc_bits", "ADC bits, one-unit step (clips)", str),
                             ("adc_bits_full_range", "ADC bits, full range (never clips)", str),
                             ("tile", "tile (one-unit step, 8 bits)", str),
                             ("read_noise", "read noise (σ / G per read)", lambda v: f"{v:g}"),
                             ("stuck_at", "stuck-at rate (half on, half off)", lambda v: f"{100 * v:g} %")):
        cells = []
        for p in data["series"][key]["points"]:
            ppl = data["points"][p["key"]]["token_ppl"]
            rel = ppl / digital - 1
            change = ("0" if abs(rel) < 5e-5 else f"×{ppl / digital:,.0f}" if rel >= 10
                      else f"{'+' if rel > 0 else '−'}{_g(abs(100 * rel), 2)} %")
            cells.append(f"{show(p['value'])}: {_g(ppl, 5) if ppl < 1e4 else _e(ppl, 3)} ({change})")
        rows.append([label, " · ".join(cells)])
    return _table(["knob", "value: token perplexity (change vs digital)"], rows)


def pruning_sweep(root: Path) -> str:
    """docs/pruning.md: every point of the sweep (``docs/pruning/pruning_sweep.json``)."""
    rows, seen_unpruned = [], False
    for r in _pruning_rows(root):
        if not r["target"]:
            if seen_unpruned:
                continue  # the unpruned point heads both allocations' series
            seen_unpruned = True
        e, s = r["events_per_token"], r["system"]
        rows.append([r["allocation"] if r["target"] else "none", f"{r['target']:.2f}", f"{r['ppl']['wikipedia']:.1f}",
                     f"{r['ppl']['news']:.1f}", _f(e["synaptic_ops"]), _f(e["input_events"]),
                     _f(e["events_to_no_synapse"]), _f(e["weight_bytes_read"] / 1e3),
                     f"{s['loihi2-estimate']['energy_per_token_j'] * 1e3:.3f}",
                     f"{s['loihi2-estimate']['token_latency_s'] * 1e3:.3f}", f"{s['loihi1']['energy_per_token_j'] * 1e3:.3f}"])
    return _table(["allocation", "pruned", "ppl WikiText-2", "ppl news", "synaptic ops/token", "input events/token",
                   "events to no synapse", "weight kB read/token", "loihi2-estimate mJ/token", "ms/token",
                   "loihi1 mJ/token"], rows)


PRUNING_ABLATION_ROWS = (
    ("random", "synapse", True, "random", "synapse (per-output balanced)"),
    ("activation", "synapse", True, "activation: `rms(x_i)` only", "synapse (balanced)"),
    ("magnitude", "synapse", True, "magnitude: latent `|w|` only", "synapse (balanced)"),
    ("wanda", "synapse", True, "**wanda: latent `|w|`·`rms(x_i)`**", "synapse (balanced)"),
    ("wanda", "synapse", False, "wanda", "synapse, one threshold per layer (unbalanced)"),
    ("wanda", "input", True, "wanda", "input neurons (whole fan-out)"),
    ("wanda", "output", True, "wanda (`rms(acc_o)` for outputs)", "output neurons (whole fan-in)"),
)


def pruning_ablation(root: Path) -> str:
    """docs/pruning.md: saliency x granularity (``docs/pruning/pruning_ablation.json``)."""
    data = _json(root, "docs/pruning/pruning_ablation.json")["rows"]
    levels = sorted({r["sparsity"] for r in data if r["sparsity"]})
    rows = []
    for sal, gran, bal, label, glabel in PRUNING_ABLATION_ROWS:
        got = {r["sparsity"]: r["ppl"] for r in data
               if (r["saliency"], r["granularity"], r.get("balance_rows", True)) == (sal, gran, bal)}
        cells = [f"{got[s]:.1f}" if s in got else "not run" for s in levels]
        if label.startswith("**"):
            cells = [f"**{c}**" for c in cells]
        rows.append([label, glabel, *cells])
    return _table(["saliency", "granularity", *(f"s = {_g(s)}" for s in levels)], rows)


DOMAIN_STEPS = {
    "unpruned": "unpruned",
    "calibrated on wikipedia": "pruned, calibrated on Wikipedia",
    "updated on news, ema 0.5": "`update(news stats, ema=0.5)`",
    "updated on news, ema 1": "`update(news stats, ema=1)` (= calibrated on news)",
    "budget 0.1: fitted on wikipedia": "budget 10%, fitted on Wikipedia calibration",
    "budget 0.1: news blended in (ema 0.5)": "news statistics blended in (ema 0.5), same sparsity",
    "budget 0.1: re-fitted on news": "budget 10%, re-fitted on news calibration",
}


def pruning_domain_shift(root: Path) -> str:
    """docs/pruning.md: the domain-shift steps (``pruning_sweep.json`` ``domain_shift``)."""
    rows = []
    for st in _json(root, "docs/pruning/pruning_sweep.json")["domain_shift"]["steps"]:
        swap = f"{_f(st['restored'])} restored / {_f(st['newly_pruned'])} pruned" if "restored" in st else ""
        rows.append([DOMAIN_STEPS.get(st["step"], st["step"]), f"{st['sparsity']:.3f}" if st["sparsity"] else "0",
                     f"{st['ppl']['wikipedia']:.1f}", f"{st['ppl']['news']:.1f}", swap])
    return _table(["step", "sparsity", "ppl WikiText-2", "ppl news", "synapses swapped"], rows)


IN_SITU = "docs/in_situ/adapt.json"


def in_situ(root: Path) -> str:
    """docs/in_situ.md: every adaptation run, quality and cost per adapted token (``docs/in_situ/adapt.json``)."""
    r = _json(root, IN_SITU)
    b = r["before"]
    rows = [["none (integer program)", _g(b["news_ppl"], 4), _g(b["wiki_ppl"], 4), "", "", "", "", ""]]
    for x in (x for x in r["runs"] if x["run"] == "float" or "cost" in x):
        c = x.get("cost")
        rows.append([x["run"] + (" (digital reference)" if x["run"] == "float" else ""), _g(x["news_ppl"], 4),
                     _g(x["wiki_ppl"], 4)]
                    + (["", "", "", "", ""] if c is None else
                       [_f(c["pulses_per_token"]), f"{_g(c['write_energy_per_token_j'] * 1e15, 3)} fJ",
                        f"{_g(c['update_time_per_token_s'] * 1e9, 3)} ns", _g(c["pulses_per_device_per_token_max"], 3),
                        _e(c["setup_pulses"], 3) if c["setup_pulses"] else "0"]))
    return _table(["learner / device", "news ppl", "WikiText-2 ppl", "pulses/token", "write energy/token",
                   "update time/token", "max pulses/device/token", "one-time setup pulses"], rows)


def in_situ_summary(root: Path) -> str:
    """README and docs/in_situ.md: what in-situ adaptation buys and costs, two sentences from the record."""
    r = _json(root, IN_SITU)
    b, runs, s = r["before"], {x["run"]: x for x in r["runs"]}, r["settings"]
    ideal, flt = runs["sgd/ideal"], runs["float"]
    mode = r["learning_mode"]["sgd/ideal"]
    best = min((x for k, x in runs.items() if k.startswith("sgd/") and k != "sgd/ideal"), key=lambda x: x["news_ppl"])
    c = ideal["cost"]
    tokens_life = 1.0 / c["endurance_per_token_max"]
    return (f"In-situ adaptation of an analog adapter beside the bundled model's output layer on {_f(s['train_tokens'])} "
            f"news tokens lowers news perplexity from {_g(b['news_ppl'], 4)} to {_g(ideal['news_ppl'], 4)} on ideal "
            f"devices (float-trained adapter: {_g(flt['news_ppl'], 4)}; best published device, "
            f"{best['run'].split('/')[1]}: {_g(best['news_ppl'], 4)}) while WikiText-2 moves from "
            f"{_g(b['wiki_ppl'], 4)} to {_g(ideal['wiki_ppl'], 4)}. It costs {_f(c['pulses_per_token'])} pulses, "
            f"{_g(c['write_energy_per_token_j'] * 1e15, 3)} fJ of write energy and "
            f"{_g(c['update_time_per_token_s'] * 1e9, 3)} ns of update time per adapted token at the RPU pulse "
            f"target; with the adapter's read and error vector, an adapted token on the crossbar preset takes "
            f"{mode['latency_ratio']:.3f}x the time and {mode['energy_ratio']:.3f}x the energy of an inference token "
            f"(system model), and its busiest device takes {_g(c['pulses_per_device_per_token_max'], 2)} pulses per "
            f"token, so an assumed 1e9-pulse endurance lasts {_e(tokens_life, 2)} adapted tokens (`{IN_SITU}`).\n")


def in_situ_findings(root: Path) -> str:
    """docs/in_situ.md: the comparisons and the periphery read in sentences computed from the record."""
    r = _json(root, IN_SITU)
    b, runs, lm = r["before"], {x["run"]: x for x in r["runs"]}, r["learning_mode"]
    ideal, e = runs["sgd/ideal"], lm["sgd/ideal"]["added_energy_j"]
    analog_nj = (e["forward_read"] + e["extra_reads"] + e["line_drive"] + e["device_writes"]) * 1e9
    out = []
    for name in (n for n in runs if n.startswith("digital/")):
        d = runs[name]
        out.append(f"The digital {name.split('/')[1]} adapter of the same size reaches news perplexity "
                   f"{_g(d['news_ppl'], 4)} (WikiText-2 {_g(d['wiki_ppl'], 4)}) against {_g(ideal['news_ppl'], 4)} "
                   f"for pulsed SGD on ideal devices, at {_g(d['digital']['total_j'] * 1e9, 3)} nJ per token for its "
                   f"read and update against the analog adapter's {_g(analog_nj, 3)} nJ "
                   f"({d['digital']['total_j'] * 1e9 / analog_nj:.1f}x).")
    prune = [runs[n] for n in runs if n.startswith("prune/")]
    if prune:
        start = next((x for x in prune if x["ema"] is None), None)
        best = min((x for x in prune if x["ema"] is not None), key=lambda x: x["news_ppl"], default=None)
        text = (f"The pruning statistics update works on a different axis: it removes synapses (sparsity "
                f"{prune[0]['sparsity']:g}) rather than learning, ")
        if start is not None:
            text += f"calibrated on Wikipedia it reads news at perplexity {_g(start['news_ppl'], 4)}, "
        if best is not None:
            text += (f"and blending in the news statistics ({best['run']}) brings it to {_g(best['news_ppl'], 4)} "
                     f"(WikiText-2 {_g(best['wiki_ppl'], 4)}), ")
        out.append(text + f"against {_g(b['news_ppl'], 4)} for the unpruned program before adaptation.")
    reads = ideal.get("reads", {})
    gain = math.log(b["news_ppl"] / ideal["news_ppl"])
    kept = lambda q: 100 * math.log(b["news_ppl"] / q["news_ppl"]) / gain  # noqa: E731
    if reads and gain > 0:
        out.append("Read through the crossbar periphery, the ideal-device adapter keeps this share of its news "
                   "log-perplexity gain: "
                   + ", ".join(f"{n} {kept(q):.0f} % (news perplexity {_g(q['news_ppl'], 4)}, ADC step "
                               f"{_g(q['step'], 3)} weight units)" for n, q in reads.items())
                   + f", against {_g(ideal['news_ppl'], 4)} read from the devices directly.")
    return " ".join(out) + "\n"


def in_situ_compare(root: Path) -> str:
    """docs/in_situ.md: the analog adapter against a digital adapter of the same size and the prune domain
    update, same tokens and metrics (``docs/in_situ/adapt.json``)."""
    r = _json(root, IN_SITU)
    b, lm = r["before"], r["learning_mode"]
    rows = [["none (integer program)", _g(b["news_ppl"], 4), _g(b["wiki_ppl"], 4), "", ""]]
    for x in r["runs"]:
        name = x["run"]
        if name in lm:
            e = lm[name]["added_energy_j"]
            writes = f"{_f(x['cost']['pulses_per_token'])} pulses / token"
            energy = _g((e["forward_read"] + e["extra_reads"] + e["line_drive"] + e["device_writes"]) * 1e9, 3)
        elif "digital" in x:
            writes = f"{_f(x['digital']['writes_per_token'])} weight writes / token"
            energy = _g(x["digital"]["total_j"] * 1e9, 3)
        elif name.startswith("prune/"):
            writes = ("no change to the weights" if x["ema"] is None else
                      f"{_f(x['restored'])} synapses restored, {_f(x['newly_pruned'])} pruned once (statistics of "
                      f"{_f(x['stats_tokens'])} tokens)")
            energy = ""
        else:
            continue
        rows.append([name, _g(x["news_ppl"], 4), _g(x["wiki_ppl"], 4), writes, energy])
    return _table(["learner", "news ppl", "WikiText-2 ppl", "what it writes", "adapter nJ / token (read + update)"], rows)


def in_situ_read(root: Path) -> str:
    """docs/in_situ.md: each adapter read as the devices hold it and through the crossbar periphery."""
    r = _json(root, IN_SITU)
    runs = [x for x in r["runs"] if "reads" in x]
    names = list(runs[0]["reads"]) if runs else []
    rows = []
    for x in runs:
        cells = [f"{_g(x['news_ppl'], 4)} / {_g(x['wiki_ppl'], 4)}"]
        for n in names:
            q = x["reads"][n]
            cells.append(f"{_g(q['news_ppl'], 4)} / {_g(q['wiki_ppl'], 4)}"
                         + (f" ({100 * q['clipped_fraction']:.2g} % clipped)" if q["clipped_fraction"] else ""))
        rows.append([x["run"], *cells])
    return _table(["adapter", "device read (news / WikiText-2 ppl)", *(f"{n} (news / WikiText-2 ppl)" for n in names)],
                  rows)


def in_situ_system(root: Path) -> str:
    """docs/in_situ.md: the learning mode of the system model, an adapted token against an inference token."""
    r = _json(root, IN_SITU)
    s = r["system"]
    rows = [["inference only", f"{s['token_latency_s'] * 1e6:.2f}", "1", f"{s['static_j'] * 1e6:.2f}",
             f"{s['dynamic_j'] * 1e6:.2f}", "1", "", "", "", ""]]
    for name, m in r["learning_mode"].items():
        e, t = m["added_energy_j"], m["added_latency_s"]
        rows.append([name, f"{m['token_latency_s'] * 1e6:.2f}", f"{m['latency_ratio']:.3f}", f"{m['static_j'] * 1e6:.2f}",
                     f"{m['dynamic_j'] * 1e6:.2f}", f"{m['energy_ratio']:.3f}",
                     f"{_g(e['forward_read'] * 1e9, 3)} / {_g(t['forward_read'] * 1e9, 3)}",
                     f"{_g(e['error_vector'] * 1e9, 3)} / {_g(t['error_vector'] * 1e9, 3)}",
                     f"{_g((e['line_drive'] + e['device_writes'] + e['extra_reads']) * 1e9, 3)} / "
                     f"{_g((t['update'] + t['extra_reads']) * 1e9, 3)}",
                     f"{_e(m['endurance_tokens'], 2)} ({m['endurance_s'] / 86400:.1f} days)"])
    return _table(["token", "latency µs", "x inference", "static µJ", "dynamic µJ", "x inference energy",
                   "adapter read nJ / ns", "error vector nJ / ns", "update nJ / ns", "endurance: adapted tokens"], rows)


def _decoder_rows(rows: list[dict], full: bool) -> list[list[str]]:
    out = []
    for r in rows:
        cells = [r["decoder"], f"{r['rouge1']:.2f}", f"{r['rouge2']:.2f}", f"{r['rougeLsum']:.2f}"]
        if "generated_tokens" not in r:
            out.append(cells + [""] * (5 if full else 2))
            continue
        cells.append(f"{r['mean_log_prob_per_token']:.3f}".replace("-", "−"))
        if full:
            spikes = (f"{_f(r['output_spikes_per_token'])} + {_f(r['compare_events_per_token'])}"
                      if "output_spikes_per_token" in r else "0")
            synops = (r["event_breakdown_per_token"]["synaptic_ops"] if "event_breakdown_per_token" in r
                      else r["model_synaptic_ops_per_token"])   # records before models.program.events.token_events
            cells += [f"{r['forward_steps_per_token']:.3f}", _e(synops), spikes]
        cells.append(_e(r["events_per_token"]))
        out.append(cells)
    return out


def beam_search(root: Path) -> str:
    """docs/beam_search.md: every decoder on the 500 articles (``docs/beam_search/results.json``)."""
    return _table(["decoder", "R-1", "R-2", "R-Lsum", "log p / token", "forward steps / token", "synaptic ops / token",
                   "output spikes + compares / token", "events / token"], _decoder_rows(_beam_rows(root), True))


def beam_early_termination(root: Path) -> str:
    """docs/beam_search.md: what early termination saves per T (``docs/beam_search/results.json``)."""
    rows = [[r["decoder"].rsplit("T=", 1)[1], _f(r["output_neuron_updates_per_token"]),
             _f(r["neuron_steps_saved_per_token"]), _pct(r["neuron_steps_saved_fraction"], 1),
             _f(r["bound_checks_per_token"]),
             f"{r['forward_steps_saved_per_token']:.3f} ({_pct(r['forward_steps_saved_fraction'], 1)})"]
            for r in _beam_rows(root) if "neuron_steps_saved_per_token" in r]
    return _table(["T", "neuron updates run / token", "neuron steps saved / token", "saved fraction",
                   "bound checks / token", "forward steps saved / token"], rows)


def beam_cue(root: Path) -> str:
    """docs/beam_search.md: the decoders with the cue ``"\\nIn summary,"`` (``cue_in_summary/results.json``)."""
    return _table(["decoder", "R-1", "R-2", "R-Lsum", "log p / token", "events / token"],
                  _decoder_rows(_beam_rows(root, "docs/beam_search/cue_in_summary/results.json"), False))


def spike_speed(root: Path) -> str:
    """docs/spike_conversion.md: SmolLM2 forward tokens/s per coding (``bench/results/spike.json``)."""
    rows = [[r["metric"].replace(": forward tokens/s", "").replace("dense forward tokens/s", "dense float32"),
             f"{r['value']:.1f}", f"{r['ratio']:.2f}"] for r in _bench(root, "spike")]
    return _table(["case", "forward tokens/s", "vs dense"], rows)


# --------------------------------------------------------------------------- SmolLM2 spike conversion (docs/)

SPIKE = "docs/spike_conversion"
#: Study point key -> (label, T) in the grid tables.
_CODING_LABEL = {"rate": "rate", "bitplane": "bitplane", "ttfs": "ttfs (log kernel)", "ttfs-linear": "ttfs-linear",
                 "unary": "unary"}


def _ppl(v: float) -> str:
    """A perplexity: four significant digits, thousands separators up to 10^5, then ``1.87e5``."""
    return _e(v, 3) if v >= 1e5 else _f(v) if v >= 1e3 else _g(v, 4)


def _grid(root: Path, thresholds: str) -> dict:
    return _json(root, f"{SPIKE}/grid_{thresholds}.json")


def _dense_macs(points: dict) -> float:
    """SmolLM2's dense MACs per token, from any spike-coded point's counts."""
    return next(r["events_per_token"]["dense_macs"] for r in points.values()
                if r.get("events_per_token", {}).get("dense_macs"))


def _grid_order(key: str) -> tuple:
    if key in ("dense", "int8"):
        return (0 if key == "dense" else 1, "", 0)
    coding, T = key.split(":")
    return (2, coding, int(T))


def spike_grid(thresholds: str):
    """docs/spike_conversion.md: the coding x T grid of one threshold mode on the first tokens of WikiText-2 test."""
    def region(root: Path) -> str:
        g = _grid(root, thresholds)
        macs = _dense_macs(g["points"])
        rows = []
        for key in sorted(g["points"], key=_grid_order):
            rec = g["points"][key]
            p = rec["ppl"]
            if key in ("dense", "int8"):
                label = "dense float32" if key == "dense" else "int8 weights, dense activations"
                cost = ["–", "–", f"({_e(macs, 3)} MACs)", "1"]
                rows.append([label, "–", _ppl(p["token_ppl"]), _ppl(p["word_ppl"]), f"{p['bits_per_byte']:.3f}"] + cost)
                continue
            coding, T = key.split(":")
            ev = rec["events_per_token"]
            rows.append([_CODING_LABEL[coding] + (" (= every coding at T=1)" if T == "1" else ""), T,
                         _ppl(p["token_ppl"]), _ppl(p["word_ppl"]), f"{p['bits_per_byte']:.3f}",
                         _e(ev["input_events"], 3), _e(ev["bit_spikes"], 3), _e(ev["synaptic_ops"], 3),
                         f"{ev['synaptic_ops'] / macs:.2f}"])
        s = g["settings"]
        head = (f"First {_f(s['max_tokens'])} tokens of WikiText-2 test, window {s['window']}, stride {s['stride']}; "
                f"thresholds calibrated on {_f(s['calib_tokens'])} corpus tokens (`{SPIKE}/grid_{thresholds}.json`).\n\n")
        return head + _table(["point", "T", "token ppl", "word ppl", "bits/byte", "input events/token",
                              "bit spikes/token", "synaptic ops/token", "ops / dense MACs"], rows)
    region.__doc__ = f"docs/spike_conversion.md: the coding x T grid, thresholds={thresholds}."
    return region


def spike_summary(root: Path) -> str:
    """docs/spike_conversion.md summary: the operating points that matter, from both grids."""
    ch, te = _grid(root, "channel")["points"], _grid(root, "tensor")["points"]
    pick = [("dense", ch, "dense", None), ("int8 weights", ch, "int8", None),
            ("bit-plane T=8, per-neuron thresholds", ch, "bitplane:8", "adds"),
            ("bit-plane T=16, per-neuron thresholds", ch, "bitplane:16", "adds"),
            ("rate T=16, per-neuron thresholds", ch, "rate:16", "adds"),
            ("log-TTFS T=8, per-neuron thresholds", ch, "ttfs:8", "adds"),
            ("rate T=8, one threshold per layer", te, "rate:8", "adds")]
    macs = _dense_macs(ch)
    rows = [[label, _ppl(pts[k]["ppl"]["token_ppl"]),
             f"{_e(pts[k]['events_per_token']['synaptic_ops'], 3)} adds" if unit else f"{_e(macs, 3)} MACs"]
            for label, pts, k, unit in pick if k in pts]
    return _table(["point", "perplexity (first 2,048 test tokens)", "synaptic ops/token"], rows)


def spike_findings(root: Path) -> str:
    """docs/spike_conversion.md: what the two grids say, each figure from them."""
    ch, te = _grid(root, "channel")["points"], _grid(root, "tensor")["points"]
    macs = _dense_macs(ch)
    ppl = lambda pts, k: pts[k]["ppl"]["token_ppl"]  # noqa: E731
    ops = lambda pts, k: pts[k]["events_per_token"]["synaptic_ops"]  # noqa: E731
    dense = ppl(ch, "dense")
    worst_tensor = max((k for k in te if k.startswith("rate:")), key=lambda k: int(k.split(":")[1]))
    return "\n".join([
        f"* **int8 weights cost nothing** ({_ppl(ppl(ch, 'int8'))} vs {_ppl(dense)} dense); the loss is in the "
        f"activations' spike coding.",
        f"* **With one threshold per site nothing survives**: rate T={worst_tensor.split(':')[1]} reaches "
        f"{_ppl(ppl(te, worst_tensor))}, bitplane T=8 {_ppl(ppl(te, 'bitplane:8'))} (the error analysis below shows "
        f"why: clipped massive activations). **Per-channel thresholds** fix most of it: bitplane T=8 "
        f"{_ppl(ppl(ch, 'bitplane:8'))} ({100 * (ppl(ch, 'bitplane:8') / dense - 1):+.0f} % over dense), rate T=16 "
        f"{_ppl(ppl(ch, 'rate:16'))}, bitplane T=4 {_ppl(ppl(ch, 'bitplane:4'))}.",
        f"* **Spikes are not free**: at usable quality every coding does more synaptic operations per token than the "
        f"dense model does MACs (bitplane T=8 {ops(ch, 'bitplane:8') / macs:.2f}x, rate T=16 "
        f"{ops(ch, 'rate:16') / macs:.2f}x). Each is an add instead of a multiply-accumulate, so the energy case rests "
        f"on an add being cheaper than a MAC by more than that factor and on hardware that does not pay per idle "
        f"neuron.",
        f"* **Bit-planes saturate at T=8**: T=16 buys {100 * (1 - ppl(ch, 'bitplane:16') / ppl(ch, 'bitplane:8')):.1f} % "
        f"perplexity for {ops(ch, 'bitplane:16') / ops(ch, 'bitplane:8'):.1f}x the ops. Rate coding needs "
        f"about twice the steps for worse quality (rate T=16 {_ppl(ppl(ch, 'rate:16'))}). Log-TTFS is the cheapest "
        f"(one spike per value, {ops(ch, 'ttfs:8') / macs:.2f}x dense MACs at T=8) but its power-of-two levels cap "
        f"quality ({_ppl(ppl(ch, 'ttfs:8'))} at T=8, {_ppl(ppl(ch, 'ttfs:16'))} at T=16).",
    ]) + "\n"


#: The commands that write the SmolLM2 records (each resumes after a kill).
SPIKE_COMMANDS = {
    "ppl_dense_full": "nmllm eval perplexity --model smollm2-135m --threads 1 --resume-file "
                      "runs/spike/ppl_dense_full.resume.json --json docs/spike_conversion/ppl_dense_full.json",
    "ppl_bitplane8_channel_full": "nmllm eval perplexity --model smollm2-135m --threads 1 --spike-coding bitplane "
                                  "--timesteps 8 --thresholds channel --resume-file "
                                  "runs/spike/ppl_bitplane8_channel_full.resume.json "
                                  "--json docs/spike_conversion/ppl_bitplane8_channel_full.json",
    "rouge_dense_200": "nmllm eval rouge --model smollm2-135m --n-articles 200 --max-new-tokens 64 "
                       "--max-article-tokens 384 --threads 1 --resume-file runs/spike/rouge_dense_200.resume.json "
                       "--json docs/spike_conversion/rouge_dense_200.json",
    "rouge_bitplane8_channel_200": "nmllm eval rouge --model smollm2-135m --n-articles 200 --max-new-tokens 64 "
                                   "--max-article-tokens 384 --threads 1 --spike-coding bitplane --timesteps 8 "
                                   "--thresholds channel --resume-file "
                                   "runs/spike/rouge_bitplane8_channel_200.resume.json "
                                   "--json docs/spike_conversion/rouge_bitplane8_channel_200.json",
}


def _spike_rows(root: Path, runs: list[tuple[str, str]], cells, width: int) -> list[list[str]]:
    """One row per ``(label, record name)``: ``cells(record)`` where the record is committed, else empty cells
    and the command that writes it."""
    rows = []
    for label, name in runs:
        path = root / SPIKE / f"{name}.json"
        if path.is_file():
            rows.append([label, *cells(json.loads(path.read_text())), f"`{SPIKE}/{name}.json`"])
        else:
            rows.append([label, *["–"] * width, f"not measured yet (the run needs hours here and resumes): "
                                                f"`{SPIKE_COMMANDS[name]}`"])
    return rows


def _synaptic_ops(r: dict, macs: float) -> str:
    """A converted run's synaptic ops per token; a dense run's MACs in brackets."""
    return _e(r["events_per_token"]["synaptic_ops"], 3) if "events_per_token" in r else f"({_e(macs, 3)} MACs)"


def spike_full_test(root: Path) -> str:
    """docs/spike_conversion.md: dense and bit-plane T=8 on all of WikiText-2 test."""
    macs = _dense_macs(_grid(root, "channel")["points"])
    rows = _spike_rows(root, [("dense float32", "ppl_dense_full"),
                              ("bitplane T=8, per-channel θ, int8 weights", "ppl_bitplane8_channel_full")],
                       lambda r: [f"**{r['token_ppl']:.2f}**", f"{r['word_ppl']:.2f}", f"{r['bits_per_byte']:.3f}",
                                  _synaptic_ops(r, macs), f"{_f(r['seconds'])} s",
                                  ", ".join(f"{x:.1f}" for x in r["provenance"]["load_average"])], 6)
    d = _json(root, f"{SPIKE}/ppl_dense_full.json")
    head = (f"All {_f(d['tokens'])} tokens of `wiki.test.raw` (SmolLM2 tokenizer), window {d['window']}, stride "
            f"{d['stride']}, one thread:\n\n")
    return head + _table(["model", "token ppl", "word ppl", "bits/byte", "synaptic ops / token", "wall time",
                          "load average at the start", "record"], rows)


def spike_rouge(root: Path) -> str:
    """docs/spike_conversion.md: ROUGE of dense and bit-plane T=8 SmolLM2 on the first 200 CNN/DailyMail articles."""
    macs = _dense_macs(_grid(root, "channel")["points"])
    rows = _spike_rows(root, [("dense float32", "rouge_dense_200"),
                              ("bitplane T=8, per-channel θ", "rouge_bitplane8_channel_200")],
                       lambda r: [f"**{r['rouge1']:.2f}**", f"**{r['rouge2']:.2f}**", f"**{r['rougeLsum']:.2f}**",
                                  _f(r["generated_tokens"]), _synaptic_ops(r, macs), f"{_f(r['seconds'])} s"], 6)
    out = _table(["model", "ROUGE-1", "ROUGE-2", "ROUGE-Lsum", "tokens generated",
                  "synaptic ops / token (prompt + generated)", "wall time", "record"], rows)
    d, b = (root / SPIKE / f"{n}.json" for n in ("rouge_dense_200", "rouge_bitplane8_channel_200"))
    if d.is_file() and b.is_file():
        d, b = json.loads(d.read_text()), json.loads(b.read_text())
        out += (f"\nThe converted model keeps {100 * b['rouge1'] / d['rouge1']:.0f} % of the dense model's ROUGE-1 "
                f"({b['rouge1'] - d['rouge1']:+.2f} points) and {100 * b['rouge2'] / d['rouge2']:.0f} % of its ROUGE-2, "
                f"at {b['events_per_token']['synaptic_ops'] / macs:.1f}x the dense MACs in synaptic additions.\n")
    return out



#: The spike error-analysis records: (label, record, command that writes it).
SPIKE_ERRORS = [
    ("rate T=4, per-site θ", "errors_rate_tensor",
     "nmllm spike errors --model smollm2-135m --threads 1 --coding rate --thresholds tensor --t-low 4 --t-mid 6 "
     "--t-high 8 --analysis-tokens 512 --sensitivity-tokens 128 --skip-ppl --ternary-tokens 0 "
     "--out docs/spike_conversion/errors_rate_tensor.json --plot-dir docs"),
    ("bitplane T=4, per-site θ", "errors_bitplane_tensor",
     "nmllm spike errors --model smollm2-135m --threads 1 --coding bitplane --thresholds tensor --t-low 4 --t-mid 6 "
     "--t-high 8 --analysis-tokens 512 --sensitivity-tokens 128 --skip-ppl --ternary-tokens 0 "
     "--out docs/spike_conversion/errors_bitplane_tensor.json --plot-dir docs"),
    ("rate T=4, per-channel θ", "errors_rate_channel",
     "nmllm spike errors --model smollm2-135m --threads 1 --coding rate --thresholds channel --t-low 4 --t-mid 8 "
     "--t-high 16 --analysis-tokens 512 --sensitivity-tokens 128 --max-tokens 2048 --ternary-tokens 512 "
     "--out docs/spike_conversion/errors_rate_channel.json --plot-dir docs"),
]
_SITE_KINDS = ("attn_in", "attn_out", "mlp_in", "mlp_out", "lm_head")


def _site_kind(site: str) -> str:
    return site.rsplit(".", 1)[-1]


def spike_errors(root: Path) -> str:
    """docs/spike_conversion.md: local and end-to-end SNR per operating point (``errors_*.json``)."""
    rows = []
    for label, name, command in SPIKE_ERRORS:
        path = root / SPIKE / f"{name}.json"
        if not path.is_file():
            rows.append([label, "–", "–", "–", "–", f"not measured yet (resumes): `{command}`"])
            continue
        r = json.loads(path.read_text())
        sites, layers = r["similarity"]["sites"], {x["layer"]: x["snr_db"] for x in r["similarity"]["layers"]}
        med = [float(statistics.median([v["snr_db"] for s, v in sites.items() if _site_kind(s) == k])) for k in _SITE_KINDS]
        worst = sorted(sites, key=lambda s: sites[s]["snr_db"])[:3]
        last = max(layers)
        rows.append([label, " / ".join(f"{m:.1f}" for m in med),
                     ", ".join(f"`{s}` {sites[s]['snr_db']:.1f}" for s in worst),
                     " / ".join(f"{layers[i]:.1f}" for i in (0, 2, 11, last) if i in layers),
                     f"{r['token_loss']['dense_nll']:.2f} → {r['token_loss']['spike_nll']:.2f}", f"`{SPIKE}/{name}.json`"])
    return _table(["operating point", "median local SNR (dB) attn_in / attn_out / mlp_in / mlp_out / lm_head",
                   "worst sites (local SNR, dB)", "hidden-state SNR after layer 0 / 2 / 11 / last (dB)",
                   "mean NLL dense → converted", "record"], rows)


def spike_token_types(root: Path) -> str:
    """docs/spike_conversion.md: the converted model's extra loss per token type (``errors_rate_channel.json``)."""
    t = _json(root, f"{SPIKE}/errors_rate_channel.json")["token_loss"]
    rows = [[kind, _f(v["tokens"]), f"{v['dense_nll']:.2f}", f"{v['spike_nll']:.2f}", f"{v['delta_mean']:.2f}",
             _pct(v["share_of_delta"])] for kind, v in sorted(t["by_type"].items(), key=lambda kv: -kv[1]["tokens"])]
    ranks = ", ".join(f"{k} {v['delta_mean']:.2f}" for k, v in t["by_rank"].items())
    pos = ", ".join(f"{k} {v['delta_mean']:.2f}" for k, v in t["by_position"].items())
    worst = ", ".join(f"`{w['token']}`" for w in t["worst_tokens"][:5])
    return (_table(["token type", "tokens", "dense NLL", "converted NLL", "ΔNLL", "share"], rows)
            + f"\nMean ΔNLL by frequency rank of the token id: {ranks}. By position in the window: {pos}. "
            f"Worst single tokens: {worst}.\n")


def spike_schedule(root: Path) -> str:
    """docs/spike_conversion.md: uniform T against the greedy mixed schedule at the uniform-T_mid budget."""
    e = _json(root, f"{SPIKE}/errors_rate_channel.json")
    grid = _grid(root, "channel")["points"]
    sites = len(e["sensitivity"])
    rows = []
    for T in (e["t_low"], e["t_mid"], e["t_high"]):
        p = grid.get(f"{e['coding']}:{T}")
        if p is not None:
            rows.append([f"uniform T={T}", _f(sites if T == e["t_high"] else 0), str(T), _ppl(p["ppl"]["token_ppl"]),
                         _e(p["events_per_token"]["synaptic_ops"], 3)])
    s = e["schedule_eval"]
    rows.append([f"mixed {e['t_low']}/{e['t_high']}, ranked by {'sensitivity per extra op' if e['rank'] == 'per-op' else 'sensitivity'}",
                 _f(s["sites_at_t_high"]), f"{s['mean_timesteps']:.1f}", _ppl(s["token_ppl"]),
                 _e(s["events_per_token"]["synaptic_ops"], 3)])
    top = sorted(e["sensitivity"].items(), key=lambda kv: -kv[1])[:5]
    return (f"Budget: the synaptic ops of uniform T={e['t_mid']} on the sensitivity tokens "
            f"({_e(e['budget_synaptic_ops'], 3)} per token). Most sensitive sites (KL): "
            + ", ".join(f"`{k}` {v:.3f}" for k, v in top) + ".\n\n"
            + _table([f"schedule ({e['coding']}, per-channel θ)", f"sites at T={e['t_high']}", "mean T",
                      f"token ppl ({_f(s['tokens'])} tokens)", "synaptic ops/token"], rows))


def spike_ternary(root: Path) -> str:
    """docs/spike_conversion.md: int8 vs ternary weight SNR per linear kind and the all-ternary perplexity."""
    e = _json(root, f"{SPIKE}/errors_rate_channel.json")
    kinds: dict[str, list] = {}
    for name, v in e["weight_snr"].items():
        kinds.setdefault(name.rsplit(".", 1)[-1].removesuffix("_proj"), []).append(v)
    rows = [[k, _f(len(v)), f"{statistics.median([x['int8'] for x in v]):.1f}", f"{statistics.median([x['ternary'] for x in v]):.1f}",
             f"{min(x['ternary'] for x in v):.1f}"] for k, v in kinds.items()]
    t = e["ternary_eval"]
    evals = "; ".join(f"{label}: {_f(v['linears'])} linears ternary, token ppl {_ppl(v['token_ppl'])}"
                      for label, v in t.items())
    return (_table(["linear kind", "layers", "median int8 SNR (dB)", "median ternary SNR (dB)",
                    "worst ternary SNR (dB)"], rows)
            + f"\nPerplexity on the first {_f(next(iter(t.values()))['tokens'])} test tokens, activations dense: "
            f"{evals}.\n")


def spike_interpret(root: Path) -> str:
    """docs/spike_conversion.md: spike statistics and class information per site kind (``interpret.json``)."""
    r = _json(root, f"{SPIKE}/interpret.json")
    keys = ("firing_rate", "entropy_bits", "nmi_neurons", "nmi_neurons_shuffled", "nmi_length", "nmi_kmeans")
    rows = []
    for k in _SITE_KINDS:
        v = [s for name, s in r["sites"].items() if _site_kind(name) == k]
        rows.append([f"`{k}`", *(f"{statistics.fmean([s[m] for s in v]):.3f}" if m != "entropy_bits"
                                 else f"{statistics.fmean([s[m] for s in v]):.2f}" for m in keys)])
    best = sorted(r["sites"].items(), key=lambda kv: kv[1]["nmi_neurons"] - kv[1]["nmi_neurons_shuffled"],
                  reverse=True)[:4]
    return (f"{r['coding']} T={r['timesteps']}, {r['thresholds']} thresholds; {r['ambiguous']} ambiguous and "
            f"{r['clear']} clear premises, mean length {r['mean_tokens_ambiguous']:.1f} vs "
            f"{r['mean_tokens_clear']:.1f} tokens (`{SPIKE}/interpret.json`).\n\n"
            + _table(["site kind (mean over layers)", "firing rate", "entropy (bits)", "NMI ambiguity",
                      "NMI, shuffled labels", "NMI, length", "NMI k-means"], rows)
            + "\nSites with the largest NMI above their shuffled floor: "
            + ", ".join(f"`{k}` {v['nmi_neurons']:.3f} vs {v['nmi_neurons_shuffled']:.3f} (rate difference "
                        f"{v['rate_diff']:+.4f})" for k, v in best) + ".\n")


def summarize_article0(root: Path) -> str:
    """docs/summarize.md: SmolLM2 on CNN/DailyMail test article 0, dense vs converted (measured ROUGE) and the
    converted model's cost per target (modelled), from ``docs/summarize/smollm2_article0.json``."""
    from experiments.summarize import cost_rows

    r = _json(root, "docs/summarize/smollm2_article0.json")
    sp, st = r["spike"], r["settings"]
    rows = [[view, _f(s["new_tokens"]), *(f"{s['rouge'][k]:.2f}" for k in ("rouge1", "rouge2", "rougeLsum"))]
            for view, s in r["summaries"].items()]
    out = (f"Measured: the summaries and ROUGE (prompt {_f(r['prompt_tokens'])} tokens; article cut to "
           f"{st['max_article_tokens']} tokens, at most {st['max_new_tokens']} new, {st['decoding']}; converted: "
           f"{sp['coding']} T={sp['timesteps']}, {sp['weights']} weights, {sp['thresholds']} thresholds):\n\n"
           + _table(["model", "tokens generated", "ROUGE-1", "ROUGE-2", "ROUGE-Lsum"], rows))
    head, rows = cost_rows(r)
    out += ("\nModelled (`sim/system/transformer.py`) from the converted summary's measured events, "
            f"{_g(r['events_per_token']['synaptic_ops'])} synaptic ops per token:\n\n" + _table(head, rows))
    kv = [[name, *(f"{_g(k[c]['kv_bytes'] / 2**20)} MiB, {k[c]['chips']} chips" for c in ("512", "2048"))]
          for name, k in r["kv_contexts"].items() if "not_mapped" not in k]
    return out + (f"\nKV cache ({st['kv_bits']}-bit values) and the chips for the weights plus the cache:\n\n"
                  + _table(["target", "512 tokens", "2,048 tokens"], kv))


STUDY = "docs/summarize/study_200.json"


def summarize_study(root: Path) -> str:
    """docs/summarize.md: the 200-article study: quality and cost per summary on every hardware, from ``STUDY``."""
    from experiments.summarize_study import study_rows

    s = _json(root, STUDY)
    head, rows = study_rows(s)
    w, gpu = s["cpu_power"], s["edge_gpu"]
    loads = ", ".join(f"load average {r['load_average'][0]:g} at the end of the {r['system']} run"
                      for r in s["rows"] if r["how"] == "measured")
    return (_table(head, rows) + "\n"
            f"Quality: ROUGE of the committed greedy decodes ({', '.join(f'`{r}`' for r in s['records'])}), "
            f"{s['settings']['max_article_tokens']}-token articles, at most {s['settings']['max_new_tokens']} new "
            f"tokens. Neuromorphic rows: the converted model's per-site events are {s['events']['source']}; each "
            f"article is costed at its own prompt length and {s['new_tokens_costed']} generated tokens (the run's mean, "
            f"{_f(s['generated_tokens']['converted'])} / {s['n_articles']}; per-article counts were not kept), the "
            f"figures are means over the articles. CPU rows: PyTorch on one core of this machine "
            f"({loads}); "
            f"tokens/s is decode wall time on the shared machine, energy is the process's CPU time x {w['w']:g} W "
            f"({w['why']}). Edge GPU: {gpu['source']}; {gpu['assumptions']}.\n")


def summarize_worst(root: Path) -> str:
    """docs/summarize.md: the articles the conversion hurts most and the spike errors measured on them."""
    from experiments.summarize_study import error_contrast, worst_rows

    s = _json(root, STUDY)
    a = s["articles"]
    worse = sum(x["delta_rouge1"] < 0 for x in a)
    loops = {v: sum(x["repeats"][v] >= 4 for x in a) for v in ("dense", "converted")}
    out = (f"Per article (ROUGE-1 of the converted summary minus the dense one's): {worse} of {len(a)} articles lose, "
           f"{sum(x['delta_rouge1'] > 0 for x in a)} gain; {sum(x['same_summary'] for x in a)} summaries are identical. "
           f"Summaries with a word 3-gram repeated 4 or more times (a loop): {loops['dense']} dense, "
           f"{loops['converted']} converted. The five largest losses:\n\n")
    head, rows = worst_rows(s)
    out += _table(head, rows)
    c = error_contrast(s)
    if c:
        e = s["errors"]["settings"]
        out += (f"\nSpike errors measured on these articles (`summarize-study errors`, {e['coding']} T={e['timesteps']}, "
                f"{e['thresholds']} thresholds, on the prompt followed by the dense summary: each site fed the dense "
                f"model's inputs, and the whole model end to end) against {len(c['contrast']['articles'])} articles "
                f"whose ROUGE-1 barely moved ({', '.join(map(str, c['contrast']['articles']))}): mean logits KL "
                f"{c['worst']['kl']:.3f} (worst) vs {c['contrast']['kl']:.3f}; local SNR lower on the worst articles by "
                + ", ".join(f"{d:.2f} dB at {site}" for site, d in c["site_gap_db"][:4])
                + "; hidden-state SNR lower by " + ", ".join(f"{d:.2f} dB after layer {i}" for i, d in c["layer_gap_db"][:3])
                + f". Over these {len(s['errors']['articles'])} articles the logits KL and the ROUGE-1 change correlate "
                  f"at r = {c['kl_vs_delta_r']:.2f} (Pearson). Read it as a tendency: the groups overlap (")
        site, r = c["site_gap_db"][0][0], c["site_range_db"][c["site_gap_db"][0][0]]
        weak, count = c["weakest_site"]
        out += (f"{site}: {r['worst'][0]:.1f}-{r['worst'][1]:.1f} dB on the worst, {r['contrast'][0]:.1f}-"
                f"{r['contrast'][1]:.1f} dB on the others), and {weak} is the site of lowest local SNR on {count} of "
                f"the {len(s['errors']['articles'])} articles, the worst and the others alike: a weak site everywhere, "
                f"not what sets the worst articles apart. The errors are measured on the dense summary's tokens; the "
                f"converted model's own greedy path leaves that path at its first different token (none of the "
                f"{len(a)} converted summaries equals the dense one), so they describe the conversion's error on the "
                f"dense path, not on its own summary.\n")
    if "corpus_errors" in s:
        k = s["corpus_errors"]
        out += (f"\nFor contrast, the WikiText-2 error analysis (`{k['source']}`, {k['coding']} T={k['t']}, {k['thresholds']} "
                f"thresholds, another coding) ranks as most sensitive: "
                + ", ".join(f"{site} ({v:.3g})" for site, v in k["most_sensitive"][:5]) + " (KL when only that site is coded).\n")
    return out


def summarize_readme(root: Path) -> str:
    """README: the study in one table: how much quality, how much energy, on which hardware."""
    s = _json(root, STUDY)
    rows = []
    for r in s["rows"]:
        if "not_mapped" in r:
            rows.append([r["system"], r["hardware"], "", "", f"not mapped: {r['not_mapped'].split(':')[0]}"])
            continue
        g = r.get("rouge")
        q = (f"{g['rouge1']:.2f}" + (f" ({g['articles']} articles; dense on them: "
                                     f"{r['dense_rouge_same_articles']['rouge1']:.2f})" if g["articles"] != s["n_articles"] else "")
             if g else r.get("rouge_why", ""))
        rows.append([r["system"], r["hardware"], q,
                     _g(r["j_per_summary"]), {"measured": "measured time x stated W/core", "modelled":
                                              "modelled from measured events", "roofline": "roofline, cited specs"}[r["how"]]])
    return (f"SmolLM2-135M summarising the first {s['n_articles']} CNN/DailyMail test articles (ROUGE-1 measured; "
            f"[docs/summarize.md](docs/summarize.md), `{STUDY}`):\n\n"
            + _table(["model", "hardware", "ROUGE-1", "J per summary", "energy is"], rows))


def _rtl_passed(root: Path) -> dict:
    """``{(unit, config): {"vectors": (verilator, icarus), "cycles": (verilator, icarus)}}`` of the RTL bench's
    passing runs (``bench/results/rtl_sim.json``: records exist only for runs that passed on both simulators)."""
    out: dict = {}
    for r in _bench(root, "rtl_sim"):
        if r["metric"] in ("vectors_passed", "cycles_passed"):
            unit, config = r["case"].split()
            out.setdefault((unit, config), {})[r["metric"].split("_")[0]] = (r["value"], r["baseline_value"])
    return out


def rtl_units(root: Path) -> str:
    """docs/rtl.md: every unit's testbench configurations, vectors checked and cycles on both simulators."""
    rows = []
    for (unit, config), v in _rtl_passed(root).items():
        same = v["cycles"][0] == v["cycles"][1]
        rows.append([unit, config, _f(v["vectors"][0]) + ("" if v["vectors"][0] == v["vectors"][1] else
                                                         f" / {_f(v['vectors'][1])}"),
                     _f(v["cycles"][0]) + (" (both)" if same else f" / {_f(v['cycles'][1])}"), "PASS / PASS"])
    for r in _json(root, "docs/accelerator/tiny.json")["runs"]:
        if len(r["phases"]) > 1:
            c = r["config"]
            rows.append(["accelerator", f"d{c['hidden']}_m{c['glu']}_l{c['layers']}_v{c['vocab']}_p{c['lanes']}_"
                         f"w{c['data_width']} ({r['simulator']}; `docs/accelerator/tiny.json`)",
                         _f(r["words_compared"]), _f(r["cycles"]), "PASS" if r["passed"] else "FAIL"])
    return _table(["unit", "config", "vectors / words checked (Verilator / Icarus)", "simulated cycles",
                   "result (Verilator / Icarus)"], rows)


def spike_attention_rtl(root: Path) -> str:
    """docs/spike_attention.md: the spike attention head's testbench on both simulators."""
    rows = [[config, "Verilator / Icarus", _f(v["vectors"][0]), _f(v["cycles"][0]) +
             ("" if v["cycles"][0] == v["cycles"][1] else f" / {_f(v['cycles'][1])}"), "PASS / PASS"]
            for (unit, config), v in _rtl_passed(root).items() if unit == "spike_attention"]
    return _table(["configuration", "simulator", "tokens", "simulated cycles", "result"], rows)


def accelerator_runs(root: Path) -> str:
    """docs/accelerator.md: every recorded run of the whole-model accelerator and its Yosys utilisation."""
    rows = []
    for name in ("tiny", "bundled"):
        for r in _json(root, f"docs/accelerator/{name}.json")["runs"]:
            c = r["config"]
            gen = r["phases"].get("load_and_generate") or next(
                (p for k, p in r["phases"].items() if p["tokens_done"] and "generate" in k), None)
            rows.append([f"d{c['hidden']} m{c['glu']}, {c['layers']} layers, vocab {_f(c['vocab'])}, "
                         f"{c['lanes']} lanes, {c['data_width']}-bit bus", r["simulator"],
                         f"{len(r['phases'])}", _f(r["words_compared"]), "PASS" if r["passed"] else "FAIL",
                         _f(gen["cycles_token"]) if gen else "–", _f(r["cycles"]),
                         f"{_f(r['build_s'])} / {_f(r['run_s'], 1)} s", f"`docs/accelerator/{name}.json`"])
    y = _json(root, "docs/accelerator/yosys.json")
    u = y["utilisation"]
    util = ", ".join(f"{_g(u[k]) if u[k] < 1 else _f(u[k])} {k}" for k in ("LUT", "FF", "CARRY", "LUTRAM", "DSP", "BRAM36"))
    wt = root / "docs/accelerator/wikitext_bundled.json"
    if wt.is_file():
        w = json.loads(wt.read_text())
        long_run = (f"\nThe bundled checkpoint, {len(w['tokens'])} greedy tokens after the {len(w['prompt'])}-token "
                    f"WikiText-2 prompt, in {len(w['sessions'])} simulator sessions joined by the state save and "
                    f"restore: {_f(w['words_compared'])} words equal to the golden model, "
                    f"{_f(max(w['cycles_token_per_start']))} cycles per token at most, "
                    f"{_f(w['simulated_cycles_per_s'])} simulated cycles/s (`docs/accelerator/wikitext_bundled.json`).\n")
    else:
        long_run = ("\nThe bundled checkpoint for 32 greedy tokens after a WikiText-2 prompt: not measured yet "
                    "(`nice -n 5 python bench/bench_accelerator.py`, resumable).\n")
    return (_table(["configuration", "simulator", "phases", "words compared", "result", "cycles / token",
                    "cycles in all", "build / run wall time", "record"], rows)
            + f"\nYosys `synth_xilinx -family xcup` of d{y['config']['hidden']} m{y['config']['glu']} "
              f"(`docs/accelerator/yosys.json`): {util}.\n" + long_run)


#: Region name -> function of the repository root returning the region's Markdown.
def _sparsity(root: Path) -> tuple[dict, dict]:
    """The sparsity study's record and its ``none`` row (``docs/sparsity/sparsity.json``)."""
    rec = _json(root, "docs/sparsity/sparsity.json")
    return rec, next(r for r in rec["rows"] if r["lever"] == "none")


def sparsity_study(root: Path) -> str:
    """docs/sparsity.md: every point of the study (``docs/sparsity/sparsity.json``)."""
    rec, base = _sparsity(root)
    ops0 = base["events_per_token"]["synaptic_ops"]
    rows = []
    for r in rec["rows"]:
        ev, d, s = r["events_per_token"], r["input_density"], r["system"]
        level = "–" if r["lever"] == "none" else (f"{r['level']:g} of fan-in" if r["lever"] == "topk" else f"{r['level']:g}")
        rows.append([r["lever"], level, f"{r['token_ppl']:.1f}",
                     " / ".join(f"{100 * d[k]:.0f}" for k in ("ifg", "o", "gate", "down", "lm_head")),
                     _m(ev["synaptic_ops"]), f"{ops0 / ev['synaptic_ops']:.2f}x", _f(ev["bit_spikes"]),
                     *(f"{s[p]['dynamic_energy_per_token_j'] * 1e6:.1f} / {s[p]['static_energy_per_token_j'] * 1e6:.1f}"
                       for p in rec["presets"]),
                     f"{s['loihi2-estimate']['token_latency_s'] * 1e3:.2f}" if "loihi2-estimate" in s else "–"])
    return _table(["lever", "level", "ppl", "input density % (ifg / o / gate / down / lm_head)", "synaptic ops / token",
                   "fewer ops", "bit spikes / token", *(f"{p} µJ dynamic / static" for p in rec["presets"]),
                   "loihi2-estimate ms / token"], rows)


def sparsity_finetune(root: Path) -> str:
    """docs/sparsity.md: the fine-tuned variants (``docs/sparsity/finetune_*/sparsity.json``) beside the bundled model."""
    rec, base = _sparsity(root)
    ops0, ppl0 = base["events_per_token"]["synaptic_ops"], base["token_ppl"]
    rows = [["bundled (no fine-tuning)", "–", f"{ppl0:.1f}", _m(ops0), "1.00x",
             f"{base['system']['loihi2-estimate']['dynamic_energy_per_token_j'] * 1e6:.1f}"]]
    for path in sorted((root / "docs" / "sparsity").glob("finetune_*/sparsity.json")):
        ft = json.loads(path.read_text())
        steps = ft["training"]["steps"]
        for r in ft["rows"]:
            point = "–" if r["lever"] == "none" else f"{r['lever']} {r['level']:g}"
            ops = r["events_per_token"]["synaptic_ops"]
            rows.append([f"{path.parent.name.removeprefix('finetune_')} (+{steps} steps)", point, f"{r['token_ppl']:.1f}",
                         _m(ops), f"{ops0 / ops:.2f}x",
                         f"{r['system']['loihi2-estimate']['dynamic_energy_per_token_j'] * 1e6:.1f}"])
    return _table(["model", "input sparsity", "ppl", "synaptic ops / token", "fewer ops than bundled",
                   "loihi2-estimate µJ dynamic / token"], rows)


def sparsity_finding(root: Path) -> str:
    """docs/sparsity.md (and the README): the best point within 5 % of the dense perplexity, in two sentences."""
    rec, base = _sparsity(root)
    ops0, ppl0 = base["events_per_token"]["synaptic_ops"], base["token_ppl"]
    ok = [r for r in rec["rows"] if r["token_ppl"] <= 1.05 * ppl0]
    best = max(ok, key=lambda r: ops0 / r["events_per_token"]["synaptic_ops"])
    two = [r for r in rec["rows"] if ops0 / r["events_per_token"]["synaptic_ops"] >= 2]
    cheapest = min(two, key=lambda r: r["token_ppl"]) if two else None
    name = lambda r: f"{r['lever']} {r['level']:g}"  # noqa: E731
    text = (f"Training-free input sparsity on the bundled model ({rec['data']['perplexity']}): within 5 % of the dense "
            f"integer program's perplexity ({ppl0:.1f}) the best lever is {name(best)}, "
            f"{ops0 / best['events_per_token']['synaptic_ops']:.2f}x fewer synaptic ops per token at perplexity "
            f"{best['token_ppl']:.1f}.")
    if cheapest is None:
        text += " No training-free point reaches 2x fewer synaptic ops."
    else:
        text += (f" Halving the synaptic ops costs perplexity: the best point with at least 2x fewer is "
                 f"{name(cheapest)} at {cheapest['token_ppl']:.1f} ({cheapest['token_ppl'] / ppl0 - 1:+.0%}).")
    return text + "\n"


REGIONS = {
    "headline": headline,
    "sparsity-study": sparsity_study,
    "sparsity-finding": sparsity_finding,
    "sparsity-finetune": sparsity_finetune,
    "bundled-perplexity": bundled_perplexity,
    "mixers": mixers,
    "pruning-summary": pruning_summary,
    "beam-summary": beam_summary,
    "ablation": ablation,
    "yosys": yosys,
    "system-370m": system_370m,
    "benchmarks": benchmarks,
    "test-suite": test_suite,
    "scaling": scaling,
    "scaling-baselines": scaling_baselines,
    "scaling-static-range": scaling_static_range,
    "loihi2-variants": loihi2_variants,
    "system-sim": system_sim,
    "system-activity": system_activity,
    "sweep-bench": sweep_bench,
    "crossbar-bench": crossbar_bench,
    "crossbar-knobs": crossbar_knobs,
    "crossbar-rtl": crossbar_rtl,
    "pruning-sweep": pruning_sweep,
    "pruning-ablation": pruning_ablation,
    "pruning-domain-shift": pruning_domain_shift,
    "in-situ": in_situ,
    "in-situ-summary": in_situ_summary,
    "in-situ-compare": in_situ_compare,
    "in-situ-findings": in_situ_findings,
    "in-situ-read": in_situ_read,
    "in-situ-system": in_situ_system,
    "beam-search": beam_search,
    "beam-early-termination": beam_early_termination,
    "beam-cue": beam_cue,
    "spike-speed": spike_speed,
    "spike-grid-channel": spike_grid("channel"),
    "spike-grid-tensor": spike_grid("tensor"),
    "spike-summary": spike_summary,
    "spike-findings": spike_findings,
    "spike-full-test": spike_full_test,
    "spike-rouge": spike_rouge,
    "spike-errors": spike_errors,
    "spike-token-types": spike_token_types,
    "spike-schedule": spike_schedule,
    "spike-ternary": spike_ternary,
    "spike-interpret": spike_interpret,
    "accelerator-runs": accelerator_runs,
    "rtl-units": rtl_units,
    "spike-attention-rtl": spike_attention_rtl,
    "summarize-article0": summarize_article0,
    "summarize-study": summarize_study,
    "summarize-worst": summarize_worst,
    "summarize-readme": summarize_readme,
}

#: Pages generated whole (relative path -> function of the repository root).
FILES = {"docs/ablation/ablation.md": ablation_md, "docs/system_model/scaling_table.md": scaling}


# ------------------------------------------------------------------------------------------------ the command

def pages(root: Path) -> list[Path]:
    """README.md and every Markdown page under docs/."""
    return [root / "README.md", *sorted((root / "docs").rglob("*.md"))]


def unmarked_tables(text: str) -> list[tuple[int, str]]:
    """``(line number, header line)`` of every Markdown table outside generated regions with a digit in its body."""
    found, inside, i = [], 0, 0
    lines = text.split("\n")
    while i < len(lines):
        m = OPEN.fullmatch(lines[i].strip())
        if m:
            inside += -1 if m[1] else 1
        if not inside and lines[i].startswith("|") and i + 1 < len(lines) and re.fullmatch(r"\|(\s*:?-+:?\s*\|)+",
                                                                                                lines[i + 1].strip()):
            j = i + 2
            while j < len(lines) and lines[j].startswith("|"):
                j += 1
            if any(re.search(r"\d", ln) for ln in lines[i + 2:j]):
                found.append((i + 1, lines[i]))
            i = j
            continue
        i += 1
    return found


class RegionError(RuntimeError):
    """A region whose records are missing or do not hold what its function reads."""


def _body(name: str, fn, root: Path, where: str) -> str:
    try:
        return fn(root)
    except (OSError, ValueError, KeyError, IndexError, StopIteration, TypeError) as exc:
        raise RegionError(f"{where}: region {name!r} cannot be written: {type(exc).__name__}: {exc}") from exc


def render(text: str, root: Path, where: str = "") -> tuple[str, list[str], list[str]]:
    """``text`` with every region regenerated, the names of the regions that changed, and the errors of the regions
    that cannot be written (left as they are)."""
    opened = OPEN.findall(text)
    names = [n for close, n in opened if not close]
    if len(opened) != 2 * len(names) or len(MARKER.findall(text)) != len(names):
        raise ValueError(f"{where}: unbalanced nmllm-docs markers; each <!-- nmllm-docs:NAME --> needs its "
                         "<!-- /nmllm-docs:NAME --> on a later line")
    unknown = sorted(set(names) - set(REGIONS))
    if unknown:
        raise ValueError(f"{where}: unknown region {unknown[0]!r}; known: {', '.join(REGIONS)}")
    changed, errors = [], []

    def sub(m: re.Match) -> str:
        name = m[1]
        try:
            body = _body(name, REGIONS[name], root, where)
        except RegionError as exc:
            errors.append(str(exc))
            return m[0]
        if body != m[2]:
            changed.append(f"{where}:{name}")
        return f"<!-- nmllm-docs:{name} -->\n{body}<!-- /nmllm-docs:{name} -->"
    return MARKER.sub(sub, text), changed, errors


def _outputs(root: Path) -> tuple[list[tuple[Path, str, list[str]]], list[str]]:
    """``(page, new text, changed regions)`` for every page and generated file, and the errors of the regions and
    files that cannot be written."""
    out, errors = [], []
    for page in pages(root):
        rel = str(page.relative_to(root))
        if rel in FILES:
            continue
        new, changed, errs = render(page.read_text(), root, rel)
        out.append((page, new, changed))
        errors += errs
    for rel, fn in FILES.items():
        page = root / rel
        try:
            new = _body(rel, fn, root, rel)
        except RegionError as exc:
            errors.append(str(exc))
            continue
        old = page.read_text() if page.is_file() else None
        out.append((page, new, [rel] if new != old else []))
    return out, errors


def check(root: Path = ROOT) -> list[str]:
    """What differs from what :func:`write` would write: the stale regions and files, then every region or file
    that cannot be written (with why)."""
    out, errors = _outputs(root)
    return [name for _, _, changed in out for name in changed] + errors


def write(root: Path = ROOT) -> tuple[list[str], list[str]]:
    """Rewrite every region and generated file that can be written (atomically, page by page); return what
    changed and the errors of the pages that could not be written."""
    out, errors = _outputs(root)
    done = []
    for page, new, changed in out:
        if changed:
            tmp = page.with_name(page.name + ".tmp")
            tmp.write_text(new)
            os.replace(tmp, page)
            done += changed
    return done, errors


def _cmd(args: argparse.Namespace) -> int:
    root = Path(args.root)
    if not (root / "README.md").is_file():
        raise FileNotFoundError(f"{root}/README.md not found; run from the repository or pass --root")
    if args.check:
        stale = check(root)
        for name in stale:
            print(f"stale: {name}" if " cannot be written" not in name else f"error: {name}", file=sys.stderr)
        if stale:
            print(f"{len(stale)} generated region(s) differ from their records; run `nmllm docs` and commit the result",
                  file=sys.stderr)
            return 1
        print("every generated region matches its records")
        return 0
    changed, errors = write(root)
    print("\n".join(f"wrote {name}" for name in changed) or "nothing to update")
    for err in errors:
        print(f"error: {err}", file=sys.stderr)
    return 1 if errors else 0


def register(subparsers) -> None:
    """Add ``docs``."""
    p = subparsers.add_parser("docs", help="write every generated table of README.md and docs/ from the JSON records",
                              description=__doc__.split("\n\n")[0])
    p.add_argument("--check", action="store_true",
                   help="write nothing; exit 1 naming every region whose text differs from its records")
    p.add_argument("--root", default=str(ROOT), help="repository root (default: this checkout)")
    p.set_defaults(func=_cmd)
