"""``nmllm ablation``: what each idea of the full system buys in quality, events and energy per token.

Rows (each changes one thing of the full system, or two for the dense row):

=========================================  ===============================================================
row                                        what changes
=========================================  ===============================================================
full system                                spike-attention model, synaptic pruning (``--sparsity``, Wanda-style
                                           saliency: latent weight x input RMS, uniform per layer), spike-based
                                           beam search, event-driven digital cores (zero activations and zero
                                           weights skipped)
without spike attention (MLGRU)            the MLGRU model (same size, data and training budget)
without pruning                            the spike-attention program unpruned
without spike beam search (beam search)    standard beam search (same width) decodes
without zero-activation skipping           every input is an event (zero or not) and every KV cell is added at
                                           every timestep; an event still reaches only its non-zero weights
without zero-weight skipping               an input event costs its whole synapse row (zero weights, pruned
                                           ones included); zero activations are still skipped
without any event skipping (dense)         both: fan-in x fan-out per projection, 2T additions per KV cell
crossbar instead of digital                ternary layers on memristor crossbar tiles (perplexity and ROUGE
                                           through the crossbar model, energy through the ``crossbar`` preset)
=========================================  ===============================================================

Columns: WikiText-2 test perplexity of the integer program (first ``--eval-tokens`` tokens, window
256 / stride 128), ROUGE-1/2/Lsum on the first ``--articles`` CNN/DailyMail test articles (the row's
decoder on the golden model; crossbar: on the crossbar tiles, first ``--crossbar-articles``), events per
token (golden model, teacher-forced on the first ``--event-tokens`` tokens, recounted under the row's
skipping rule by :func:`count_events`), events per generated token while decoding (every beam's forward
steps, plus the spike decoder's output spikes and comparisons), energy and latency of one forward step
from the system model with the activity measured by the golden model (the row's skipping rule applied),
and what the RTL (``hw/``) implements of the row. Events per token are those of
:func:`models.program.events.token_events` (as in ``nmllm decode``): input events + synaptic ops + attention
additions (+ the decoder's output spikes and comparisons), each part kept by name in the row's
``event_breakdown_per_token`` and ``decode_event_breakdown_per_generated_token``.

Every measurement (a cell) is stored under the row settings it depends on (:data:`SHARED_BECAUSE` lists the
settings each one does not depend on, and why); a row that reuses another row's measurement says so in
its ``shared`` record and in the table. Cells and finished rows are kept in ``<out>/ablation.partial.json``
(:class:`experiments.resume.Results`, bound to the settings that decide the numbers, written atomically after
each): the same command rerun after a kill resumes there, one with other settings is refused.
``<out>/ablation.json`` keeps every number (with its provenance); the partial file is then deleted. Before
the table, the two token mixers are compared unpruned (:func:`compare_mixers`, ``<out>/mixers.json``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Optional

from experiments.provenance import provenance
from experiments.resume import Results, write_json

if TYPE_CHECKING:
    from models.program.events import LayerEvents

__all__ = ["ROWS", "Row", "KNOBS", "SHARED_BECAUSE", "count_events", "run_ablation", "ratios", "register"]


@dataclass(frozen=True)
class Row:
    """One ablation setting; ``rtl`` says what the RTL (``hw/``) implements of it."""

    name: str
    model: str = "spike"          # "spike" (spike attention) or "mlgru"
    pruned: bool = True
    decoder: str = "spike"        # "spike" (spike beam search) or "beam"
    act_skip: bool = True         # zero activations (and zero spikes) are no events
    weight_skip: bool = True      # an input event reaches only its non-zero weights
    hardware: str = "digital"     # "digital" or "crossbar"
    rtl: str = field(default="", compare=False)


#: The settings of a row that can change a number (``name`` and ``rtl`` cannot).
KNOBS = ("model", "pruned", "decoder", "act_skip", "weight_skip", "hardware")

DENSE = "without any event skipping (dense)"
ROWS = (
    Row("full system", rtl="zero activations skipped; zero weights not"),
    Row("without spike attention (MLGRU)", model="mlgru", rtl="both token mixers have RTL units"),
    Row("without pruning", pruned=False, rtl="pruning saves no RTL cycles (zero weights not skipped)"),
    Row("without spike beam search (beam search)", decoder="beam", rtl="no decoder in the RTL"),
    Row("without zero-activation skipping", act_skip=False,
        rtl="implemented (hw/ternary_matvec.py: a zero costs one load beat)"),
    Row("without zero-weight skipping", weight_skip=False, rtl="not implemented"),
    Row(DENSE, act_skip=False, weight_skip=False,
        rtl="zero-activation skipping implemented, zero-weight skipping not implemented"),
    Row("crossbar instead of digital", hardware="crossbar",
        rtl="digital twin of the tile periphery only (hw/crossbar_tile.py)"),
)

_SAME_ARITHMETIC = ("skipping a zero adds 0, so the integer logits are the same: the event-driven golden model "
                    "equals the dense integer view bit for bit (tests/test_ablation.py)")
_RECOUNTED = "the same golden run, counted under this row's rule"
#: measurement -> {knob it does not depend on: why}; its cache key is every other knob of :data:`KNOBS`.
SHARED_BECAUSE = {
    "perplexity": {"decoder": "perplexity is teacher-forced: no decoder runs",
                   "act_skip": _SAME_ARITHMETIC, "weight_skip": _SAME_ARITHMETIC},
    "decode": {"act_skip": _SAME_ARITHMETIC + "; decode events recounted under this row's rule",
               "weight_skip": _SAME_ARITHMETIC + "; decode events recounted under this row's rule"},
    "golden events": {"decoder": "teacher-forced counts: no decoder runs", "act_skip": _RECOUNTED,
                      "weight_skip": _RECOUNTED,
                      "hardware": "the system model's activity input (input and weight densities) is the "
                                  "program's, whichever hardware runs it"},
    "energy": {"decoder": "the system model costs one forward step; the decoder is not in it"},
}


def program_constants(program) -> dict:
    """Per-forward counts of an integer program that the skipping rules need: non-zero weights ``nnz``, synapse
    slots ``dense``, inputs ``inputs`` (all projections and ``lm_head``), KV cells ``attention_cells`` and ``timesteps``
    (spike attention; 0 for MLGRU)."""
    import numpy as np

    projs = [program.lm_head] + [p for layer in program.layers for p in layer.proj.values()]
    spike = program.token_mixer == "spike_attention"
    dh = program.input_dim // program.num_heads if spike else 0
    return {"nnz": int(sum(np.count_nonzero(p.codes) for p in projs)),
            "dense": int(sum(p.fan_in * p.fan_out for p in projs)),
            "inputs": int(sum(p.fan_in for p in projs)),
            "attention_cells": len(program.layers) * program.num_heads * dh * dh if spike else 0,
            "timesteps": int(program.timesteps) if spike else 0}


def count_events(counts: dict, forwards: int, consts: dict, act_skip: bool, weight_skip: bool) -> LayerEvents:
    """The summed golden counts ``counts`` of ``forwards`` forward steps, recounted under a skipping rule (the event
    vocabulary of :mod:`models.program.events`): unless ``act_skip``, every input is an input event and reaches the
    program's non-zero weights (synaptic ops) and zero weights (zero-weight slots), and every KV cell is added 2T
    times; unless ``weight_skip``, an event's zero-weight slots are operations too. The other counts stay the golden
    model's. ``consts`` is :func:`program_constants` of the program."""
    from dataclasses import replace

    from models.program.events import EVENT_FIELDS, LayerEvents

    ev = LayerEvents(**{k: counts[k] for k in EVENT_FIELDS})
    if not act_skip:
        ev = replace(ev, input_events=forwards * consts["inputs"], synaptic_ops=forwards * consts["nnz"],
                     zero_weight_slots=forwards * (consts["dense"] - consts["nnz"]),
                     attention_ops=forwards * _dense_attention(consts))
    if not weight_skip:
        ev = replace(ev, synaptic_ops=ev.synaptic_ops + ev.zero_weight_slots, zero_weight_slots=0)
    return ev


def _dense_attention(consts: dict) -> int:
    """Attention additions of one forward step without spike gating: 2T per KV cell (T state, T output)."""
    return 2 * consts["timesteps"] * consts["attention_cells"]


_RULES = {(True, True): "input events + synaptic ops (input event x non-zero weight) + spike-gated attention additions",
          (True, False): "input events + input events x fan-out + spike-gated attention additions",
          (False, True): "every input an event + every input x its non-zero weights + 2T additions per KV cell",
          (False, False): "every input an event + fan-in x fan-out per projection + 2T additions per KV cell"}


def _crossbar_config():
    """The crossbar row's tiles: 128 x 128 (the ``crossbar`` preset's arrays), 1-bit DACs, an 8-bit ADC with a
    one-column-unit step, 2 % programming and 2 % read noise, no IR drop (see docs/crossbar.md)."""
    from models.program.crossbar import Periphery
    from sim.crossbar.device import DeviceParams
    from sim.crossbar.tile import CrossbarConfig

    return CrossbarConfig(tile_rows=128, tile_cols=128, device=DeviceParams(prog_noise=0.02, read_noise=0.02),
                          periphery=Periphery(dac_bits=1, adc_bits=8, adc_shift=0))


class _Study:
    """Keeps every measurement in ``results`` under the row settings it depends on (:data:`SHARED_BECAUSE`)."""

    def __init__(self, args: argparse.Namespace, results: Results):
        from models.mmfree.checkpoint import load_checkpoint
        from models.text.tokenizer import load_tokenizer

        self.args, self.results = args, results
        self.models = {"spike": load_checkpoint(args.spike_model).eval(), "mlgru": load_checkpoint(args.mlgru_model).eval()}
        self.tok = load_tokenizer(args.mlgru_model)
        other = load_tokenizer(args.spike_model)
        if other.to_str() != self.tok.to_str():
            raise ValueError("the two models use different tokenizers: train both with the same tokenizer.json")
        self.text = Path(args.data).read_text(encoding="utf-8")
        self._programs: dict = {}

    @staticmethod
    def key(measure: str, row: Row) -> str:
        """The results key of ``measure`` for ``row``: every knob the measurement depends on."""
        return " ".join([f"cell {measure}:"] + [f"{k}={getattr(row, k)}" for k in KNOBS if k not in SHARED_BECAUSE[measure]])

    def measure(self, measure: str, row: Row, fn, shared: dict):
        """``fn()`` once per key (stored in the results at once); when it was measured for another row,
        ``shared[measure]`` says which and why."""
        key = self.key(measure, row)
        if key not in self.results:
            t0 = time.perf_counter()
            value = fn()
            self.results.put(key, {"value": value, "row": row.name, "knobs": {k: getattr(row, k) for k in KNOBS},
                                   "seconds": time.perf_counter() - t0})
            print(f"  {measure} for {row.name!r}: {time.perf_counter() - t0:.0f} s", file=sys.stderr)
        cell = self.results[key]
        differ = [k for k in KNOBS if getattr(row, k) != cell["knobs"][k]]
        if differ:
            shared[measure] = {"row": cell["row"], "why": {k: SHARED_BECAUSE[measure][k] for k in differ}}
        return cell["value"]

    # ------------------------------------------------------------------ programs
    def program(self, model: str, pruned: bool):
        if (model, pruned) not in self._programs:
            self._programs[model, pruned] = self._program(model, pruned)
        return self._programs[model, pruned]

    def _program(self, model: str, pruned: bool):
        from models.program.integer_program import IntegerProgram
        from models.pruning.pruner import SynapticPruner
        from models.pruning.stats import gather_stats, latent_magnitudes
        from models.text.sources import heldout_corpus_text, token_windows

        program = IntegerProgram.from_model(self.models[model])
        if not pruned:
            return program
        calib = token_windows(self.tok, heldout_corpus_text("wikipedia", 400_000), self.args.calib_tokens)
        stats = gather_stats(program, calib, source=f"{self.args.calib_tokens} held-out Wikipedia tokens")
        return SynapticPruner(program, stats, self.args.sparsity, latent=latent_magnitudes(self.models[model])).pruned()

    # ------------------------------------------------------------------ measurements
    def perplexity(self, row: Row, shared: dict) -> dict:
        def run():
            from models.program.integer_view import IntegerView
            from models.eval.perplexity import text_perplexity
            from sim.crossbar.tile import CrossbarExecutor

            hook = CrossbarExecutor(_crossbar_config()) if row.hardware == "crossbar" else None
            view = IntegerView(self.program(row.model, row.pruned), accumulate=hook)
            tokens = self.args.crossbar_eval_tokens if row.hardware == "crossbar" else self.args.eval_tokens
            r = text_perplexity(view.logits_float, self.tok, self.text, max_tokens=tokens, progress=False)
            out = {"token_ppl": r["token_ppl"], "tokens": r["tokens"]}
            if hook is not None:   # the digital program on the same (shorter) text, for a fair comparison
                digital = IntegerView(self.program(row.model, row.pruned)).logits_float
                out["digital_ppl_same_tokens"] = text_perplexity(digital, self.tok, self.text, max_tokens=tokens,
                                                                 progress=False)["token_ppl"]
            return out
        return self.measure("perplexity", row, run, shared)

    def golden_events(self, row: Row, shared: dict) -> dict:
        """Golden-model counts of the row's program, teacher-forced: summed per layer, and the program's constants."""
        def run():
            from models.program.golden import GoldenModel
            from models.text.tokenizer import encode

            program = self.program(row.model, row.pruned)
            ids = encode(self.tok, self.text)[: self.args.event_tokens]
            _, per_layer = GoldenModel(program).run(ids)
            total = per_layer[0]
            for e in per_layer[1:]:
                total = total + e
            return {"tokens": len(ids), "per_layer": [e.as_dict() for e in per_layer], "counts": total.as_dict(),
                    "constants": program_constants(program)}
        return self.measure("golden events", row, run, shared)

    def decode(self, row: Row, shared: dict) -> dict:
        """The row's decoder on the first articles: ROUGE, the predictions, and the counts of its forward steps
        (golden model), or of its ADC conversions (crossbar tiles)."""
        def run():
            from models.decoding.beam_search import beam_search, spike_beam_search
            from models.decoding.prompts import make_prompt
            from models.decoding.steppers import GoldenStepper, ViewStepper
            from models.eval.rouge import default_data_path, load_pairs, rouge_scores
            from models.program.golden import GoldenModel
            from models.program.integer_view import IntegerView
            from models.text.tokenizer import EOS_ID, decode
            from sim.crossbar.tile import CrossbarExecutor

            a = self.args
            program = self.program(row.model, row.pruned)
            if row.hardware == "crossbar":
                hook = CrossbarExecutor(_crossbar_config())
                stepper, n = ViewStepper(IntegerView(program, accumulate=hook)), a.crossbar_articles
            else:
                stepper, n = GoldenStepper(GoldenModel(program)), a.articles
            pairs = load_pairs(default_data_path(), n)
            preds, generated, forwards, spikes, compares = [], 0, 0, 0, 0
            for pair in pairs:
                prompt = make_prompt(self.tok, pair["article"], a.article_tokens)
                common = dict(max_new_tokens=a.max_new_tokens, eos_id=EOS_ID, no_repeat_ngram=3)
                if row.decoder == "spike":
                    d = spike_beam_search(stepper, prompt, a.beam, a.timesteps, **common)
                    spikes += d.stats["output_spikes"]
                    compares += d.stats["compare_events"]
                else:
                    d = beam_search(stepper, prompt, a.beam, **common)
                generated += len(d.tokens)
                forwards += d.stats["forward_steps"]
                preds.append(decode(self.tok, [t for t in d.tokens if t != EOS_ID]).strip())
            out = {**rouge_scores(preds, [p["highlights"] for p in pairs]), "articles": len(pairs),
                   "generated_tokens": generated, "forward_steps": forwards, "output_spikes": spikes,
                   "compare_events": compares,
                   "predictions": preds, "references": [p["highlights"] for p in pairs]}
            if row.hardware == "crossbar":
                adc = sum(hook.adc_conversions().values())
                out.update(adc_conversions=adc, forwarded_tokens=stepper.tokens)
            else:
                out["counts"] = stepper.events.as_dict()
            return out
        return self.measure("decode", row, run, shared)

    def energy(self, row: Row, shared: dict) -> dict:
        def run():
            from dataclasses import replace

            from models.program.events import LayerEvents
            from sim.system.activity import activity_from_layer_events
            from sim.system.compiler import auto_chips, compile_model
            from sim.system.energy import load_preset
            from sim.system.model import SystemModel
            from sim.system.shapes import ModelShape

            model = self.models[row.model]
            shape = ModelShape.from_config(f"bundled-{row.model}", model.config, "ablation", False)
            ev = self.golden_events(row, {})
            act = activity_from_layer_events([LayerEvents(**e) for e in ev["per_layer"]], shape, ev["tokens"])
            c = ev["constants"]
            if not row.act_skip:
                act = replace(act, input_nonzero={k: 1.0 for k in act.input_nonzero}, weight_density=c["nnz"] / c["dense"],
                              attention_adds_per_cell=2.0 * c["timesteps"], measured=False,
                              source="COUNTERFACTUAL: every input an event (non-zero weights of the program), every "
                                     "KV cell added at every timestep; " + act.source)
            if not row.weight_skip:
                act = replace(act, weight_density=1.0, measured=False,
                              source="COUNTERFACTUAL: every synapse slot of an event's row an operation; " + act.source)
            preset = auto_chips(shape, load_preset("crossbar" if row.hardware == "crossbar" else self.args.preset))
            rep = SystemModel(compile_model(shape, preset), preset, act).run(prompt_tokens=64)
            dyn = sum(v for k, v in rep.energy_j.items() if k not in ("static", "total"))
            return {"energy_per_token_j": rep.energy_per_token_j, "dynamic_energy_per_token_j": dyn,
                    "token_latency_s": rep.token_latency_s, "preset": preset.name, "chips": rep.chips,
                    "activity": act.to_dict()}
        return self.measure("energy", row, run, shared)

    def row(self, row: Row) -> dict:
        from models.eval.rouge import rouge_scores
        from models.program.events import token_events

        shared: dict = {}
        out = {"row": row.name, "settings": {k: getattr(row, k) for k in KNOBS}, "rtl": row.rtl,
               **self.perplexity(row, shared)}
        ev = self.golden_events(row, shared)
        dec = self.decode(row, shared)
        out.update({k: dec[k] for k in ("rouge1", "rouge2", "rougeLsum", "articles", "generated_tokens")})
        if row.hardware == "crossbar":
            per_token = dec["adc_conversions"] / dec["forwarded_tokens"]
            digital = self.decode(Row("full system (digital)", **{**out["settings"], "hardware": "digital"}), {})
            n = dec["articles"]
            same = rouge_scores(digital["predictions"][:n], digital["references"][:n])
            out.update(events_per_token=None, decode_events_per_token=None, adc_conversions_per_token=per_token,
                       decode_adc_conversions_per_generated_token=per_token * dec["forward_steps"] / max(dec["generated_tokens"], 1),
                       digital_same_articles={**{k: same[k] for k in ("rouge1", "rouge2", "rougeLsum")},
                                              "identical_summaries": sum(a == b for a, b in zip(dec["predictions"],
                                                                                                digital["predictions"]))},
                       events_rule="crossbar tiles run every MVM in full: no synaptic ops; ADC conversions instead")
        else:
            c, rule = ev["constants"], (row.act_skip, row.weight_skip)
            fig = token_events(count_events(ev["counts"], ev["tokens"], c, *rule), ev["tokens"])
            dec_fig = token_events(count_events(dec["counts"], dec["forward_steps"], c, *rule),
                                   max(dec["generated_tokens"], 1), dec["output_spikes"], dec["compare_events"])
            out.update(events_per_token=fig["events"], projection_events_per_token=fig["synaptic_ops"],
                       attention_events_per_token=fig["attention_ops"], event_breakdown_per_token=fig,
                       decode_events_per_token=dec_fig["events"], decode_event_breakdown_per_generated_token=dec_fig,
                       events_rule=_RULES[rule])
        out["event_detail"] = {"tokens": ev["tokens"], **{k: v / ev["tokens"] for k, v in ev["counts"].items()},
                               "inputs": ev["constants"]["inputs"], "nnz_weights": ev["constants"]["nnz"],
                               "synapse_slots": ev["constants"]["dense"],
                               "dense_attention_adds": _dense_attention(ev["constants"])}
        out["densities"] = _densities(ev)
        out.update(self.energy(row, shared))
        out["shared"] = shared
        return out


def _densities(ev: dict) -> dict:
    """What skipping can save in a golden run ``ev``: the activation and weight densities of the event vocabulary,
    the static non-zero share of the program's weights, and the share of dense attention additions spikes gate in."""
    from models.program.events import EVENT_FIELDS, LayerEvents, activation_density, weight_density

    total, c = LayerEvents(**{k: ev["counts"][k] for k in EVENT_FIELDS}), ev["constants"]
    dense_attn = ev["tokens"] * _dense_attention(c)
    return {"activation": activation_density(total), "weight": weight_density(total), "static_weight": c["nnz"] / c["dense"],
            "attention": total.attention_ops / dense_attn if dense_attn else None}


#: The token-mixer comparison: both models unpruned, event-driven, digital (decoding does not enter).
MIXER_ROWS = (Row("MLGRU", model="mlgru", pruned=False), Row("spike attention", model="spike", pruned=False))


#: Arguments that cannot change a number: not among the settings the results are bound to.
_NOT_SETTINGS = ("func", "out", "no_progress", "threads")


def _settings(args: argparse.Namespace) -> dict:
    return {k: v for k, v in vars(args).items() if k not in _NOT_SETTINGS}


def compare_mixers(args: argparse.Namespace, study: _Study) -> dict:
    """Perplexity, events and energy per token of the two unpruned models (``<out>/mixers.json``)."""
    from models.program.events import token_events

    rows = []
    for row in MIXER_ROWS:
        shared: dict = {}
        ev = study.golden_events(row, shared)
        detail = {"tokens": ev["tokens"], **{k: v / ev["tokens"] for k, v in ev["counts"].items()}}
        fig = token_events(count_events(ev["counts"], ev["tokens"], ev["constants"], True, True), ev["tokens"])
        rows.append({"row": row.name, **study.perplexity(row, shared), "event_detail": detail,
                     "events_per_token": fig["events"], "event_breakdown_per_token": fig, **study.energy(row, shared)})
    result = {"settings": _settings(args), "rows": rows, "provenance": provenance()}
    write_json(Path(args.out, "mixers.json"), result)
    return result


def run_ablation(args: argparse.Namespace, rows=ROWS) -> dict:
    """Every row of the table, resumed from ``<out>/ablation.partial.json`` where a killed run left it; writes
    ``<out>/mixers.json`` and ``<out>/ablation.json`` and returns the latter."""
    from models.eval.perplexity import default_data_path

    t0 = time.perf_counter()
    if args.data is None:   # resolved here, not in the parser: models.eval imports torch
        args.data = str(default_data_path())
    res = Results(Path(args.out, "ablation.partial.json"), _settings(args))   # refuses other settings before loading
    study = _Study(args, res)
    compare_mixers(args, study)
    keys = {f"row {row.name}": row for row in rows}
    for key in res.pending(keys, desc="ablation", unit="row", progress=not args.no_progress):
        res.put(key, study.row(keys[key]))
    result = {"settings": _settings(args), "rows": [res[k] for k in keys]}
    result.update(ratios=ratios(result), wall_s=time.perf_counter() - t0, resumed=res.resumed, provenance=provenance())
    return res.finish(Path(args.out, "ablation.json"), result)


#: (what the ratio measures, numerator row, denominator row): the worth of each kind of skipping and of pruning.
RATIOS = (
    ("zero-activation skipping, zero weights skipped", "without zero-activation skipping", "full system"),
    ("zero-weight skipping, zero activations skipped", "without zero-weight skipping", "full system"),
    ("zero-activation skipping, zero weights not skipped", DENSE, "without zero-weight skipping"),
    ("zero-weight skipping, zero activations not skipped", DENSE, "without zero-activation skipping"),
    ("both (dense / full system)", DENSE, "full system"),
    ("pruning, both skips on", "without pruning", "full system"),
)


def ratios(result: dict) -> list[dict]:
    """Measured ratios between rows (:data:`RATIOS`; those whose rows are present): events (and their projection and
    attention parts), decode events, dynamic and total energy, latency per token (``None`` over a zero)."""
    rows = {r["row"]: r for r in result["rows"]}
    keys = ("events_per_token", "projection_events_per_token", "attention_events_per_token", "decode_events_per_token",
            "dynamic_energy_per_token_j", "energy_per_token_j", "token_latency_s")
    return [{"what": what, "rows": [a, b], **{k: rows[a][k] / rows[b][k] if rows[b][k] else None for k in keys}}
            for what, a, b in RATIOS if a in rows and b in rows]


def mixer_table(result: dict) -> str:
    """The Markdown table of :func:`compare_mixers`."""
    lines = ["| mixer | perplexity | synaptic ops / token | attention adds / token | spikes / token | "
             "state updates / token | energy / token (dynamic) | latency / token |", "|---|---|---|---|---|---|---|---|"]
    for r in result["rows"]:
        e = r["event_detail"]
        lines.append(f"| {r['row']} | {r['token_ppl']:.2f} | {e['synaptic_ops']:.3g} | {e['attention_ops']:.3g} | "
                     f"{e['spikes']:.3g} | {e['state_updates']:.3g} | {r['energy_per_token_j'] * 1e6:.1f} µJ "
                     f"({r['dynamic_energy_per_token_j'] * 1e6:.2f} µJ) | {r['token_latency_s'] * 1e3:.2f} ms |")
    return "\n".join(lines)


_CELLS = {"perplexity": "perplexity", "decode": "ROUGE and decode events", "golden events": "golden counts",
          "energy": "energy and latency"}


def _footnotes(result: dict) -> dict[str, int]:
    """One footnote number per distinct reason why rows share a measurement, in order of appearance."""
    notes: dict[str, int] = {}
    for r in result["rows"]:
        for s in r["shared"].values():
            for why in s["why"].values():
                notes.setdefault(why, len(notes) + 1)
    return notes


def _shared_cell(r: dict, notes: dict[str, int]) -> str:
    """``measurements: source row [footnotes]`` for each group of measurements a row shares alike."""
    groups: dict[tuple, list[str]] = {}
    for m, s in r["shared"].items():
        refs = tuple(sorted({notes[w] for w in s["why"].values()}))
        groups.setdefault((s["row"], refs), []).append(_CELLS[m])
    return "; ".join(f"{', '.join(ms)}: {src} [{', '.join(map(str, refs))}]" for (src, refs), ms in groups.items())


def _times(v: Optional[float]) -> str:
    return "–" if v is None else f"{v:.3f}×"


def table(result: dict) -> str:
    """The Markdown table of a result, its footnotes (shared measurements) and the measured ratios."""
    notes = _footnotes(result)
    lines = ["| row | perplexity | ROUGE-1 / 2 / Lsum | events / token | decode events / generated token | "
             "energy / forward token (dynamic) | latency / forward token | RTL (`hw/`) | measured once, for the row named |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in result["rows"]:
        ppl = f"{r['token_ppl']:.2f}"
        if "digital_ppl_same_tokens" in r:
            ppl += f" ({r['tokens']:,} tokens; digital on them: {r['digital_ppl_same_tokens']:.2f})"
        rouge = f"{r['rouge1']:.2f} / {r['rouge2']:.2f} / {r['rougeLsum']:.2f}"
        if "digital_same_articles" in r:
            d = r["digital_same_articles"]
            rouge += (f" ({r['articles']} articles on crossbars; digital on them: {d['rouge1']:.2f} / {d['rouge2']:.2f} / "
                      f"{d['rougeLsum']:.2f}; {d['identical_summaries']} identical summaries)")
        if r["events_per_token"] is None:
            events = f"– ({r['adc_conversions_per_token']:.3g} ADC conversions; no synaptic ops)"
            decode = f"– ({r['decode_adc_conversions_per_generated_token']:.3g} ADC conversions)"
        else:
            events, decode = f"{r['events_per_token']:.3g}", f"{r['decode_events_per_token']:.3g}"
        shared = _shared_cell(r, notes)
        lines.append(f"| {r['row']} | {ppl} | {rouge} | {events} | {decode} | "
                     f"{r['energy_per_token_j'] * 1e6:.1f} µJ ({r['dynamic_energy_per_token_j'] * 1e6:.2f} µJ) | "
                     f"{r['token_latency_s'] * 1e3:.2f} ms | {r['rtl']} | {shared or '–'} |")
    for why, i in notes.items():
        lines.append(f"\n[{i}] {why[0].upper()}{why[1:]}.")
    if result.get("ratios"):
        lines += ["", "| measured ratio | rows | events / token (projections; attention) | decode events / generated token | "
                      "dynamic energy | total energy | latency |", "|---|---|---|---|---|---|---|"]
        for q in result["ratios"]:
            lines.append(f"| {q['what']} | {q['rows'][0]} / {q['rows'][1]} | {_times(q['events_per_token'])} "
                         f"({_times(q['projection_events_per_token'])}; {_times(q['attention_events_per_token'])}) | "
                         f"{_times(q['decode_events_per_token'])} | {_times(q['dynamic_energy_per_token_j'])} | "
                         f"{_times(q['energy_per_token_j'])} | {_times(q['token_latency_s'])} |")
    for r in result["rows"]:
        if r["row"] in ("full system", "without pruning"):
            d = r["densities"]
            attn = "" if d["attention"] is None else f"; spikes gate in {d['attention']:.1%} of the dense attention additions"
            lines.append(f"\nGolden model, {r['row']}: activation density {d['activation']:.3f}, weight density "
                         f"{d['weight']:.3f} (the program's non-zero weight share: {d['static_weight']:.3f}){attn}.")
    return "\n".join(lines)


def plot(result: dict, path: Path) -> Path:
    """Bar charts of the rows: perplexity, events per token, dynamic energy per token (one panel each)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = result["rows"]
    names = [r["row"].replace(" (", "\n(") for r in rows]
    panels = (("token_ppl", "WikiText-2 perplexity", 1.0), ("events_per_token", "events / token (golden model)", 1.0),
              ("dynamic_energy_per_token_j", "dynamic energy / forward token (µJ)", 1e6))
    fig, axes = plt.subplots(1, 3, figsize=(15, 5.4))
    for ax, (key, label, scale) in zip(axes, panels):
        vals = [None if r[key] is None else r[key] * scale for r in rows]
        ax.barh(range(len(rows)), [v or 0.0 for v in vals], color=["tab:green"] + ["tab:gray"] * (len(rows) - 1))
        ax.set_yticks(range(len(rows)), names if ax is axes[0] else [""] * len(rows), fontsize=8)
        ax.invert_yaxis()
        ax.set_xlabel(label)
        for i, v in enumerate(vals):
            ax.text(v or 0.0, i, " n/a (crossbar: no synaptic ops)" if v is None else f" {v:.3g}", va="center", fontsize=8)
    fig.suptitle("Ablations of the full system (bundled-size models; data subsets in ablation.json)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Arguments of ``nmllm ablation``."""
    p.add_argument("--spike-model", default="models/bundled_spike_attention", help="spike-attention checkpoint directory")
    p.add_argument("--mlgru-model", default="models/bundled", help="MLGRU checkpoint directory")
    p.add_argument("--data", default=None, help="perplexity text (default WikiText-2 test)")
    p.add_argument("--eval-tokens", type=int, default=32768, help="tokens scored for perplexity")
    p.add_argument("--crossbar-eval-tokens", type=int, default=4096, help="tokens scored on crossbars (slower)")
    p.add_argument("--event-tokens", type=int, default=1024, help="tokens the golden model counts events on")
    p.add_argument("--calib-tokens", type=int, default=16384, help="held-out corpus tokens for pruning statistics")
    p.add_argument("--sparsity", type=float, default=0.2, help="fraction of synapses pruned (rows with pruning)")
    p.add_argument("--articles", type=int, default=100, help="CNN/DailyMail test articles for ROUGE")
    p.add_argument("--crossbar-articles", type=int, default=10,
                   help="articles decoded on crossbars (slower; at most --articles)")
    p.add_argument("--article-tokens", type=int, default=192, help="article tokens in each prompt")
    p.add_argument("--max-new-tokens", type=int, default=48, help="summary length limit")
    p.add_argument("--beam", type=int, default=4, help="beam width of both beam decoders")
    p.add_argument("--timesteps", type=int, default=8, help="T of the spike beam search")
    p.add_argument("--preset", default="loihi2-estimate", help="system-model preset of the digital rows")
    p.add_argument("--out", default="docs/ablation", help="output folder (mixers.json, ablation.json, ablation.md, ablation.png)")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    p.add_argument("--no-progress", action="store_true", help="no tqdm progress bar")


def _cmd(args: argparse.Namespace) -> int:
    from models.program.spike_attention import check_timesteps

    check_timesteps(args.timesteps)
    if isinstance(args.beam, bool) or args.beam <= 0:
        raise ValueError(f"--beam must be a positive integer, got {args.beam}")
    if not 0.0 <= args.sparsity < 1.0:
        raise ValueError(f"--sparsity must be in [0, 1), got {args.sparsity}")
    for name in ("eval_tokens", "crossbar_eval_tokens", "event_tokens", "calib_tokens", "articles", "crossbar_articles",
                 "article_tokens", "max_new_tokens"):
        if getattr(args, name) <= 0:
            raise ValueError(f"--{name.replace('_', '-')} must be a positive integer, got {getattr(args, name)}")
    if args.crossbar_articles > args.articles:
        raise ValueError(f"--crossbar-articles ({args.crossbar_articles}) must not exceed --articles ({args.articles}): "
                         f"the crossbar summaries are compared with the digital ones of the same articles")
    if args.threads is not None:
        if args.threads <= 0:
            raise ValueError(f"--threads must be a positive integer, got {args.threads}")
        import torch

        torch.set_num_threads(args.threads)
    result = run_ablation(args)
    mixers = json.loads(Path(args.out, "mixers.json").read_text())
    text = mixer_table(mixers) + "\n\n" + table(result)
    Path(args.out, "ablation.md").write_text(text + "\n")
    plot(result, Path(args.out, "ablation.png"))
    print(text)
    return 0


def register(subparsers) -> None:
    """Add ``ablation``."""
    p = subparsers.add_parser("ablation", help="the ablation table: perplexity, ROUGE, events and energy per token",
                              description=__doc__.split("\n\n")[0])
    add_arguments(p)
    p.set_defaults(func=_cmd)
