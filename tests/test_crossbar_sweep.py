"""The crossbar perplexity sweep on a random tiny model and a short text: ideal tiles give exactly the digital
perplexity, noisy ones do not, bad knob values are refused, results resume, the CLI writes plots."""

import json
import math

import pytest
import torch

from models.mmfree.checkpoint import save_checkpoint
from models.mmfree.config import preset
from models.text.corpus import corpus_files
from models.program.crossbar import Periphery
from models.program.integer_program import IntegerProgram
from models.mmfree.model import MMFreeForCausalLM
from models.text.tokenizer import save_tokenizer, train_tokenizer
from experiments import crossbar_perplexity as ps
from nmllm.cli import main
from sim.crossbar.device import DeviceParams
from sim.crossbar.tile import CrossbarConfig

torch.set_num_threads(1)

KW = dict(max_tokens=96, window=64, stride=32)


@pytest.fixture(scope="module")
def tiny():
    tok = train_tokenizer(400, corpus_files()[:1], max_bytes=60_000)
    torch.manual_seed(0)
    model = MMFreeForCausalLM(preset("tiny", vocab_size=400)).eval()
    text = corpus_files()[0].read_text(encoding="utf-8", errors="replace")[:4000]
    return model, tok, text


@pytest.fixture(scope="module")
def evaluator(tiny):
    model, tok, text = tiny
    return ps.Evaluator(IntegerProgram.from_model(model), tok, text, **KW)


@pytest.mark.parametrize("config", [
    CrossbarConfig(tile_rows=32, tile_cols=32, periphery=Periphery(adc_bits=8)),              # full range
    CrossbarConfig(tile_rows=16, tile_cols=16, periphery=Periphery(adc_bits=6, adc_shift=0)),  # unit step
    ps.base_config(),                                                                           # tile > layers
], ids=["32-full-8b", "16-unit-6b", "base"])
def test_ideal_crossbars_give_exactly_the_digital_perplexity(evaluator, config):
    digital = evaluator(None)
    crossbar = evaluator(config)
    assert crossbar["tokens"] == digital["tokens"] == KW["max_tokens"]
    assert crossbar["nll"] == digital["nll"]
    assert crossbar["token_ppl"] == digital["token_ppl"]
    assert crossbar["adc_clipped_fraction"] == 0.0


@pytest.mark.parametrize("knob,value", [("read_noise", 0.3), ("adc_bits", 3), ("stuck_at", 0.1)])
def test_noisy_setting_changes_the_perplexity(evaluator, knob, value):
    digital = evaluator(None)
    noisy = evaluator(ps.apply_knob(ps.base_config(), knob, value))
    assert math.isfinite(noisy["nll"]) and noisy["nll"] != digital["nll"]
    if knob == "adc_bits":   # a 3-bit ADC with a one-unit step clips
        assert noisy["adc_clipped_fraction"] > 0
    assert evaluator(ps.apply_knob(ps.base_config(), knob, value))["nll"] == noisy["nll"]   # seeded


@pytest.mark.parametrize("knob,values,message", [
    ("adc_bits", [8, 0], "ADC bits must be at least 1, not 0"),
    ("tile", [128], "Tile 128 is larger than the model's layers allow (largest fan-in 64)"),
    ("tile", [0], "Tile size must be a positive integer, not 0"),
    ("stuck_at", [1.5], "Stuck-at rate 1.5 is outside [0, 1]"),
    ("stuck_at", [-0.01], "Stuck-at rate -0.01 is outside [0, 1]"),
    ("read_noise", [-0.1], "Read noise must be >= 0, not -0.1"),
    ("adc_range", ["half"], "ADC range 'half' is not one of 'unit', 'full'"),
    ("gain", [1], "Unknown crossbar knob 'gain'"),
    ("adc_bits", [], "Knob 'adc_bits' has no values to sweep"),
    ("adc_bits", ["x"], "ADC bits must be an integer, not 'x'"),
])
def test_bad_knob_values_are_refused(evaluator, knob, values, message):
    with pytest.raises(ValueError) as e:
        ps.check_knob_values(knob, values, evaluator.layers)
    assert message in str(e.value) and "\n" not in str(e.value)


def test_bad_text_subset_is_refused(tiny):
    model, tok, text = tiny
    with pytest.raises(ValueError, match="--max-tokens must be a positive integer, not 0"):
        ps.Evaluator(IntegerProgram.from_model(model), tok, text, max_tokens=0)


def test_sweep_resumes_and_finds_the_cheapest_setting(evaluator, tmp_path):
    calls = []

    def counting(config):
        calls.append(config)
        return evaluator(config)

    meta = {"model": "tiny", "max_tokens": KW["max_tokens"]}
    series = [ps.Series("adc_bits", "adc_bits", (3, 8)), ps.Series("tile", "tile", (16, 64))]
    path = tmp_path / "sweep.json"
    sweep = ps.PerplexitySweep(counting, evaluator.layers, meta, path, progress=False)
    sweep.run_series(series)
    assert len(calls) == 1 + 1 + 2 + 1            # digital, base, adc 3 (8 is the base), tile 16 (64 = base)
    data = json.loads(path.read_text())
    assert data["digital"]["token_ppl"] == data["points"][data["base"]]["token_ppl"]
    assert [p["value"] for p in data["series"]["tile"]["points"]] == [16, 64]

    again = ps.PerplexitySweep(counting, evaluator.layers, meta, path, progress=False)
    again.run_series(series)
    assert len(calls) == 5 and again.evaluations == 0  # nothing recomputed

    grid = {"adc_bits": (3, 5, 8), "tile": (16, 64), "adc_range": ("unit",), "dac_bits": (1,)}
    cheapest = again.search_cheapest(grid, max_evaluations=4)
    points = json.loads(path.read_text())["points"].values()
    ok = [p for p in points if p["knobs"]["read_noise"] == 0 and p["knobs"]["stuck_at"] == 0
          and p["token_ppl"] <= data["digital"]["token_ppl"] * 1.01]
    assert cheapest is not None and cheapest["relative_to_digital"] <= 0.01
    assert cheapest["energy_pj_per_token"] == min(p["energy_pj_per_token"] for p in ok)
    per_layer = cheapest["token_report"]["layers"]
    assert sum(r["adc_conversions"] for r in per_layer) == cheapest["adc_conversions_per_token"]

    with pytest.raises(ValueError, match="holds results of another model or text subset"):
        ps.PerplexitySweep(counting, evaluator.layers, {**meta, "max_tokens": 7}, path, progress=False)


def test_cli_writes_results_and_plots(tiny, tmp_path, capsys):
    model, tok, text = tiny
    ckpt = tmp_path / "m"
    save_checkpoint(model, ckpt)
    save_tokenizer(tok, ckpt)
    data = tmp_path / "text.raw"
    data.write_text(text)
    out = tmp_path / "out"
    args = ["crossbar-sweep", "--model", str(ckpt), "--data", str(data), "--max-tokens", "64", "--window", "64", "--stride", "32",
            "--out", str(out), "--no-progress", "--search-evaluations", "2",
            "--values", "adc_bits=4,8", "--values", "tile=16,32", "--values", "read_noise=0.1",
            "--values", "stuck_at=0.01"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "digital: token perplexity" in printed and "evaluations in" in printed
    res = json.loads((out / ps.RESULTS_NAME).read_text())
    assert res["meta"]["max_tokens"] == 64 and res["search"]["grid"]["tile"] == [64]
    assert {"git_sha", "command", "packages", "machine", "load_average", "date"} <= set(res["provenance"])
    for knob in ("adc_bits", "tile", "read_noise", "stuck_at"):
        png = out / f"ppl_vs_{knob}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    assert main(args[:-2] + ["--values", "stuck_at=2"]) == 2
    err = capsys.readouterr().err
    assert err.strip() == "nmllm crossbar-sweep: error: Stuck-at rate 2 is outside [0, 1]"
    assert main(args + ["--values", "gain=1"]) == 2
    assert "--values names no swept knob: gain" in capsys.readouterr().err


def test_read_noise_device_is_the_knob(evaluator):
    cfg = ps.apply_knob(ps.base_config(), "read_noise", 0.05)
    assert cfg.device == DeviceParams(read_noise=0.05)
    assert ps.apply_knob(ps.base_config(), "stuck_at", 0.02).device.stuck_on == pytest.approx(0.01)
    assert ps.apply_knob(ps.base_config(), "adc_range", "full").periphery.adc_shift is None
