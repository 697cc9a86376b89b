"""``nmllm ablation``: what each idea of the full system buys in quality, events and energy per token.

Rows (each changes one thing of the full system):

==============================  ==============================================================
row                             what changes
==============================  ==============================================================
full system                     spike-attention model, synaptic pruning (``--sparsity``, Wanda-style
                                saliency: latent weight x input RMS, uniform per layer), spike-based
                                beam search, event-driven cores (zeros skipped), digital cores
without spike attention         the MLGRU model (same size, data and training budget)
without pruning                 the spike-attention program unpruned
without spike beam search       standard beam search (same width) decodes
without event skipping          every input is an event and every synapse slot an operation
                                (dense activity), every KV cell added at every timestep
crossbar instead of digital     ternary layers on memristor crossbar tiles (accuracy through the
                                crossbar model, energy through the ``crossbar`` preset)
==============================  ==============================================================

Columns: WikiText-2 test perplexity of the integer program (first ``--eval-tokens`` tokens, window
256 / stride 128), ROUGE-1/2/Lsum on the first ``--articles`` CNN/DailyMail test articles (the row's
decoder on the golden model), events per token (golden model, teacher-forced on the first
``--event-tokens`` tokens: synaptic ops + spike-gated attention additions), events per generated token
while decoding (every beam's forward steps, plus the spike decoder's output spikes and comparisons),
and energy and latency per decoded token from the system model with the activity measured by the
golden model. Every number names its data subset; ``<out>/ablation.json`` keeps all of them. Before the table, the
two token mixers are compared unpruned (:func:`compare_mixers`, ``<out>/mixers.json``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

__all__ = ["ROWS", "Row", "run_ablation", "register"]


@dataclass(frozen=True)
class Row:
    """One ablation setting."""

    name: str
    model: str = "spike"          # "spike" (spike attention) or "mlgru"
    pruned: bool = True
    decoder: str = "spike"        # "spike" (spike beam search) or "beam"
    skipping: bool = True         # event-driven (zeros skipped) or dense
    hardware: str = "digital"     # "digital" or "crossbar"


ROWS = (
    Row("full system"),
    Row("without spike attention (MLGRU)", model="mlgru"),
    Row("without pruning", pruned=False),
    Row("without spike beam search (beam search)", decoder="beam"),
    Row("without event skipping (dense)", skipping=False),
    Row("crossbar instead of digital", hardware="crossbar"),
)


def _crossbar_config():
    """The crossbar row's tiles: 128 x 128 (the ``crossbar`` preset's arrays), 1-bit DACs, an 8-bit ADC with a
    one-column-unit step, 2 % programming and 2 % read noise, no IR drop (see docs/crossbar.md)."""
    from models.program.crossbar import Periphery
    from sim.crossbar.device import DeviceParams
    from sim.crossbar.tile import CrossbarConfig

    return CrossbarConfig(tile_rows=128, tile_cols=128, device=DeviceParams(prog_noise=0.02, read_noise=0.02),
                          periphery=Periphery(dac_bits=1, adc_bits=8, adc_shift=0))


class _Study:
    """Caches every measurement by the settings it depends on, so rows share what they have in common."""

    def __init__(self, args: argparse.Namespace):
        from models.eval.perplexity import default_data_path
        from models.mmfree.checkpoint import load_checkpoint
        from models.text.tokenizer import load_tokenizer

        if args.data is None:   # resolved here, not in the parser: models.eval imports torch
            args.data = str(default_data_path())
        self.args = args
        self.models = {"spike": load_checkpoint(args.spike_model).eval(), "mlgru": load_checkpoint(args.mlgru_model).eval()}
        self.tok = load_tokenizer(args.mlgru_model)
        other = load_tokenizer(args.spike_model)
        if other.to_str() != self.tok.to_str():
            raise ValueError("the two models use different tokenizers: train both with the same tokenizer.json")
        self.text = Path(args.data).read_text(encoding="utf-8")
        self._cache: dict = {}

    def cached(self, key, fn):
        if key not in self._cache:
            t0 = time.perf_counter()
            self._cache[key] = fn()
            print(f"  {key[0]} {key[1:]}: {time.perf_counter() - t0:.0f} s", file=sys.stderr)
        return self._cache[key]

    # ------------------------------------------------------------------ programs
    def program(self, model: str, pruned: bool):
        return self.cached(("program", model, pruned), lambda: self._program(model, pruned))

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
    def perplexity(self, row: Row) -> dict:
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
        return self.cached(("perplexity", row.model, row.pruned, row.hardware), run)

    def events(self, row: Row) -> tuple[dict, list]:
        def run():
            from models.program.golden import GoldenModel
            from models.text.tokenizer import encode

            ids = encode(self.tok, self.text)[: self.args.event_tokens]
            _, per_layer = GoldenModel(self.program(row.model, row.pruned)).run(ids)
            total = per_layer[0]
            for e in per_layer[1:]:
                total = total + e
            return {"tokens": len(ids), **{k: v / len(ids) for k, v in total.as_dict().items()}}, per_layer
        return self.cached(("events", row.model, row.pruned), run)

    def rouge(self, row: Row) -> dict:
        def run():
            from models.decoding.beam_search import beam_search, spike_beam_search
            from models.decoding.prompts import make_prompt
            from models.decoding.steppers import GoldenStepper
            from models.program.golden import GoldenModel
            from models.eval.rouge import default_data_path, load_pairs, rouge_scores
            from models.text.tokenizer import EOS_ID, decode

            a = self.args
            stepper = GoldenStepper(GoldenModel(self.program(row.model, row.pruned)))
            pairs = load_pairs(default_data_path(), a.articles)
            preds, tokens, extra = [], 0, 0.0
            for pair in pairs:
                prompt = make_prompt(self.tok, pair["article"], a.article_tokens)
                stepper.prefill(prompt)
                common = dict(max_new_tokens=a.max_new_tokens, eos_id=EOS_ID, no_repeat_ngram=3)
                if row.decoder == "spike":
                    d = spike_beam_search(stepper, prompt, a.beam, a.timesteps, **common)
                    extra += d.stats["output_spikes"] + d.stats["compare_events"]
                else:
                    d = beam_search(stepper, prompt, a.beam, **common)
                tokens += len(d.tokens)
                preds.append(decode(self.tok, [t for t in d.tokens if t != EOS_ID]).strip())
            ev = stepper.events
            r = rouge_scores(preds, [p["highlights"] for p in pairs])
            r.update(articles=len(pairs), generated_tokens=tokens,
                     decode_events_per_token=(ev.synaptic_ops + ev.attention_ops + extra) / max(tokens, 1))
            return r
        return self.cached(("rouge", row.model, row.pruned, row.decoder), run)

    def energy(self, row: Row) -> dict:
        def run():
            from sim.system.activity import Activity, activity_from_layer_events
            from sim.system.compiler import auto_chips, compile_model
            from sim.system.energy import load_preset
            from sim.system.shapes import ModelShape
            from sim.system.model import SystemModel

            model = self.models[row.model]
            shape = ModelShape.from_config(f"bundled-{row.model}", model.config, "ablation", False)
            per_token, per_layer = self.events(row)
            act = activity_from_layer_events(per_layer, shape, per_token["tokens"])
            if not row.skipping:
                T = model.config.spike_timesteps if row.model == "spike" else 0
                act = Activity(input_nonzero={k: 1.0 for k in act.input_nonzero}, weight_density=1.0, value_density=1.0,
                               source="DENSE: every input an event, every synapse slot an operation", measured=False,
                               attention_adds_per_cell=2.0 * T)
            preset = auto_chips(shape, load_preset("crossbar" if row.hardware == "crossbar" else self.args.preset))
            rep = SystemModel(compile_model(shape, preset), preset, act).run(prompt_tokens=64)
            dyn = sum(v for k, v in rep.energy_j.items() if k not in ("static", "total"))
            return {"energy_per_token_j": rep.energy_per_token_j, "dynamic_energy_per_token_j": dyn,
                    "token_latency_s": rep.token_latency_s, "preset": preset.name, "chips": rep.chips}
        return self.cached(("energy", row.model, row.pruned, row.skipping, row.hardware), run)

    def row(self, row: Row) -> dict:
        ev, _ = self.events(row)
        if row.skipping:
            events = ev["synaptic_ops"] + ev["attention_ops"]
        else:
            m = self.models[row.model].config
            cells = ev["state_updates"] if row.model == "spike" else 0.0
            events = ev["dense_macs"] + cells * 2 * (m.spike_timesteps if row.model == "spike" else 0)
        return {"row": row.name, "settings": row.__dict__, **self.perplexity(row), **self.rouge(row),
                "events_per_token": events, "event_detail": ev, **self.energy(row)}


#: The token-mixer comparison: both models unpruned, event-driven, digital (decoding does not enter).
MIXER_ROWS = (Row("MLGRU", model="mlgru", pruned=False), Row("spike attention", model="spike", pruned=False))


def compare_mixers(args: argparse.Namespace, study: Optional["_Study"] = None) -> dict:
    """Perplexity, events and energy per token of the two unpruned models (``<out>/mixers.json``)."""
    study = study or _Study(args)
    rows = []
    for row in MIXER_ROWS:
        ev, _ = study.events(row)
        rows.append({"row": row.name, **study.perplexity(row), "event_detail": ev,
                     "events_per_token": ev["synaptic_ops"] + ev["attention_ops"], **study.energy(row)})
    result = {"settings": {k: v for k, v in vars(args).items() if k != "func"}, "rows": rows}
    Path(args.out).mkdir(parents=True, exist_ok=True)
    Path(args.out, "mixers.json").write_text(json.dumps(result, indent=1) + "\n")
    return result


def run_ablation(args: argparse.Namespace, rows=ROWS) -> dict:
    """Every row of the table; results are written to ``<out>/ablation.json`` after each row."""
    from tqdm import tqdm

    study = _Study(args)
    compare_mixers(args, study)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    result = {"settings": {k: v for k, v in vars(args).items() if k != "func"}, "rows": []}
    for row in tqdm(rows, desc="ablation", unit="row", dynamic_ncols=True):
        result["rows"].append(study.row(row))
        (out / "ablation.json").write_text(json.dumps(result, indent=1) + "\n")
    return result


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


def table(result: dict) -> str:
    """The Markdown table of a result."""
    lines = ["| row | perplexity | ROUGE-1 / 2 / Lsum | events / token | decode events / generated token | "
             "energy / token (dynamic) | latency / token |", "|---|---|---|---|---|---|---|"]
    for r in result["rows"]:
        ppl = f"{r['token_ppl']:.2f}"
        if "digital_ppl_same_tokens" in r:
            ppl += f" ({r['tokens']:,} tokens; digital on them: {r['digital_ppl_same_tokens']:.2f})"
        lines.append(f"| {r['row']} | {ppl} | {r['rouge1']:.2f} / {r['rouge2']:.2f} / {r['rougeLsum']:.2f} | "
                     f"{r['events_per_token']:.3g} | {r['decode_events_per_token']:.3g} | "
                     f"{r['energy_per_token_j'] * 1e6:.1f} µJ ({r['dynamic_energy_per_token_j'] * 1e6:.2f} µJ) | "
                     f"{r['token_latency_s'] * 1e3:.2f} ms |")
    return "\n".join(lines)


def plot(result: dict, path: Path) -> Path:
    """Bar charts of the rows: perplexity, events per token, dynamic energy per token (one panel each)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = result["rows"]
    names = [r["row"].replace(" (", "\n(") for r in rows]
    panels = (("token_ppl", "WikiText-2 perplexity", 1.0), ("events_per_token", "events / token", 1.0),
              ("dynamic_energy_per_token_j", "dynamic energy / token (µJ)", 1e6))
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.8))
    for ax, (key, label, scale) in zip(axes, panels):
        vals = [r[key] * scale for r in rows]
        ax.barh(range(len(rows)), vals, color=["tab:green"] + ["tab:gray"] * (len(rows) - 1))
        ax.set_yticks(range(len(rows)), names if ax is axes[0] else [""] * len(rows), fontsize=8)
        ax.invert_yaxis()
        ax.set_xlabel(label)
        for i, v in enumerate(vals):
            ax.text(v, i, f" {v:.3g}", va="center", fontsize=8)
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
    p.add_argument("--article-tokens", type=int, default=192, help="article tokens in each prompt")
    p.add_argument("--max-new-tokens", type=int, default=48, help="summary length limit")
    p.add_argument("--beam", type=int, default=4, help="beam width of both beam decoders")
    p.add_argument("--timesteps", type=int, default=8, help="T of the spike beam search")
    p.add_argument("--preset", default="loihi2-estimate", help="system-model preset of the digital rows")
    p.add_argument("--out", default="docs/ablation", help="output folder (mixers.json, ablation.json, ablation.md, ablation.png)")


def _cmd(args: argparse.Namespace) -> int:
    from models.program.spike_attention import check_timesteps

    check_timesteps(args.timesteps)
    if isinstance(args.beam, bool) or args.beam <= 0:
        raise ValueError(f"--beam must be a positive integer, got {args.beam}")
    if not 0.0 <= args.sparsity < 1.0:
        raise ValueError(f"--sparsity must be in [0, 1), got {args.sparsity}")
    for name in ("eval_tokens", "crossbar_eval_tokens", "event_tokens", "calib_tokens", "articles", "article_tokens",
                 "max_new_tokens"):
        if getattr(args, name) <= 0:
            raise ValueError(f"--{name.replace('_', '-')} must be a positive integer, got {getattr(args, name)}")
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
