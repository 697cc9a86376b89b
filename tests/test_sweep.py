"""The sweep: spec validation messages, failing points, kill -9 and resume, exports, quality, the HTML report
in headless Chromium."""

import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from experiments.sweep import finish
from sim.sweep.engine import run_sweep
from sim.sweep.pareto import pareto_mask
from sim.sweep.point import evaluate_point
from sim.sweep.spec import SpecError, load_spec
from sim.sweep.store import Store

ROOT = Path(__file__).resolve().parent.parent


def _spec(**over):
    d = {"name": "t", "models": ["tiny"], "knobs": {"preset": ["loihi1"]}}
    d.update(over)
    return d


# ------------------------------------------------------------------------------------ spec validation
@pytest.mark.parametrize("doc, message", [
    (_spec(knobs={"adc_bit": [4]}), r"^unknown knob 'adc_bit': use one of preset, chips"),
    (_spec(knobs={"fill": []}), r"^knob 'fill' has an empty range: give at least one value$"),
    (_spec(knobs={"fill": {"min": 1.0, "max": 0.5}}), r"^knob 'fill' has an empty range: min 1.0 > max 0.5$"),
    (_spec(metrics=["system", "latency"]), r"^unknown metric 'latency': choose from system, quality, yosys$"),
    (_spec(knobs={"timesteps": [1, 4]}), r"^knob 'timesteps' has no model behind it yet: .*; remove it from knobs$"),
    (_spec(knobs={"pruning": [0.1]}), r"^knob 'pruning' has no model behind it yet: no pruning"),
    (_spec(knobs={"preset": ["loihi1"], "adc_bits": [4]}),
     r"^knob 'adc_bits' needs a crossbar preset, but preset 'loihi1' has no crossbar arrays"),
    (_spec(knobs={"preset": ["loihi1"], "clock_mhz": [200]}), r"^knob 'clock_mhz' needs a preset with a stated clock"),
    (_spec(knobs={"preset": ["crossbar"], "act_bits": [4]}, metrics=["quality"], quality={"checkpoint": "."}),
     r"^knob 'act_bits' below 8 has no quality model"),
    (_spec(knobs={"fill": {"min": 0.25, "max": 1.0}}), r"^knob 'fill': a grid needs a list of values or a range with step"),
    (_spec(colour="red"), r"^unknown spec key 'colour': known keys are name, "),
    (_spec(models=["370x"]), r"^models: unknown model '370x'"),
    (_spec(sampling={"method": "sobol"}), r"^sampling.method must be one of grid, random, latin_hypercube"),
    (_spec(sampling={"method": "random"}), r"^sampling.points must be a positive integer for random"),
    (_spec(metrics=["quality"]), r"^metric 'quality' needs a quality section with checkpoint"),
    (_spec(knobs={"preset": ["loihi9"]}), r"^knob 'preset': no preset 'loihi9'"),
])
def test_spec_errors_name_the_problem(doc, message):
    with pytest.raises(SpecError, match=message):
        load_spec(doc)


def test_spec_points_grid_random_lhs():
    grid = load_spec(_spec(knobs={"preset": ["loihi1", "loihi2-estimate"], "fill": {"min": 0.25, "max": 1.0, "step": 0.25}}))
    pts = grid.points()
    assert len(pts) == 8 and sorted({p.knobs["fill"] for p in pts}) == [0.25, 0.5, 0.75, 1.0]
    again = load_spec(_spec(knobs={"preset": ["loihi1", "loihi2-estimate"], "fill": {"min": 0.25, "max": 1.0, "step": 0.25}}))
    assert [p.id for p in pts] == [p.id for p in again.points()] and again.hash == grid.hash
    lhs = load_spec(_spec(knobs={"fill": {"min": 0.2, "max": 1.0}, "static_per_chip": {"min": 0.01, "max": 1.0, "log": True}},
                          sampling={"method": "latin_hypercube", "points": 10, "seed": 3})).points()
    fills = sorted(p.knobs["fill"] for p in lhs)
    assert len(lhs) == 10 and all(0.2 + 0.08 * i <= f <= 0.2 + 0.08 * (i + 1) for i, f in enumerate(fills))  # one per stratum
    rnd = load_spec(_spec(knobs={"cores_per_chip": {"min": 32, "max": 128}}, sampling={"method": "random", "points": 5}))
    assert all(isinstance(p.knobs["cores_per_chip"], int) and 32 <= p.knobs["cores_per_chip"] <= 128 for p in rnd.points())


def test_pareto_mask():
    x = [1, 2, 3, 2, 4]
    y = [5, 3, 4, 3, 1]
    assert pareto_mask(x, y).tolist() == [True, True, False, True, True]
    assert pareto_mask([1, 2], [1, 2], True, False).tolist() == [True, True]


# ------------------------------------------------------------------------------------ points and engine
def test_point_matches_nmllm_simulate():
    from sim.system.activity import assumed_activity
    from sim.system.compiler import auto_chips, compile_model
    from sim.system.energy import load_preset
    from sim.system.shapes import model_shape
    from sim.system.model import simulate

    spec = load_spec(_spec(knobs={"preset": ["crossbar"], "adc_bits": [8, 4]}))
    res = [evaluate_point(p.to_dict(), {"metrics": spec.metrics}) for p in spec.points()]
    assert all(r["status"] == "ok" for r in res)
    shape = model_shape("tiny")
    preset = auto_chips(shape, load_preset("crossbar"))
    ref = simulate(compile_model(shape, preset), preset, assumed_activity(shape))
    by_adc = {p.knobs["adc_bits"]: r["metrics"] for p, r in zip(spec.points(), res)}
    assert by_adc[8]["energy_per_token_j"] == pytest.approx(ref.energy_per_token_j, rel=1e-12)
    assert by_adc[8]["tokens_per_s"] == pytest.approx(ref.tokens_per_s, rel=1e-12)
    assert by_adc[4]["energy_adc_dac_j"] < by_adc[8]["energy_adc_dac_j"]     # Walden scaling: 16x fewer pJ per conversion


def test_failing_point_is_recorded_and_sweep_goes_on(tmp_path):
    spec = load_spec(_spec(models=["370m"], knobs={"preset": ["loihi1"], "chips": [1, "auto"], "cores_per_chip": [128, 100]}))
    store = Store(tmp_path / "sweep.sqlite")
    res = run_sweep(spec, store, workers=1, processes=False, progress=False)
    assert (res.ok, res.failed, res.total) == (1, 3, 4)
    rows = {(r["knob.chips"], r["knob.cores_per_chip"]): r for r in store.rows()}
    assert rows[("auto", 128)]["status"] == "ok" and rows[("auto", 128)]["chips"] == 77
    assert rows[(1, 128)]["error"].startswith("DoesNotFit: model 370m needs 77 loihi1 chips")
    assert rows[("auto", 100)]["error"] == ("ValueError: cores_per_chip=100 is not a positive multiple of the 32 routers "
                                            "per chip: pick a multiple or change mesh")
    out = finish(spec, store, tmp_path)
    import pyarrow.parquet as pq
    table = pq.read_table(out["parquet"])
    assert table.num_rows == 4 and "energy_per_token_j" in table.column_names
    assert len((tmp_path / "points.csv").read_text().splitlines()) == 5
    meta = store.meta()
    assert meta["spec_hash"] == spec.hash and meta["project_version"].startswith("0.1.0")
    with pytest.raises(ValueError, match="already holds 4 points of this spec: pass --resume"):
        run_sweep(spec, store, workers=1, processes=False, progress=False)
    other = load_spec(_spec(models=["370m"], knobs={"preset": ["loihi2-estimate"]}))
    with pytest.raises(ValueError, match="holds a sweep of another spec"):
        run_sweep(other, store, resume=True, processes=False, progress=False)
    store.close()


def _rows(db: Path) -> dict:
    con = sqlite3.connect(db)
    out = {pid: (status, error, json.loads(metrics), comp)
           for pid, status, error, metrics, comp in con.execute("SELECT id, status, error, metrics, computations FROM points")}
    con.close()
    return out


def _sweep_cmd(spec: Path, out: Path, log: Path, *extra):
    return [sys.executable, "-m", "nmllm.cli", "sweep", str(spec), "--out", str(out), "--threads", "--workers", "1",
            "--no-progress", "--compute-log", str(log), *extra]


@pytest.mark.slow
def test_sigkill_then_resume_equals_uninterrupted_run(tmp_path):
    spec_path = tmp_path / "kill.yaml"
    spec_path.write_text(yaml.safe_dump({"name": "kill", "models": ["125m"], "knobs": {
        "preset": ["loihi2-estimate", "crossbar", "vck190"], "fill": [0.5, 0.75, 1.0],
        "static_per_chip": [0.1, 0.2, 0.3], "chips": ["auto"]}}))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    n = len(load_spec(spec_path).points())
    # the reference: one uninterrupted run
    ref = subprocess.run(_sweep_cmd(spec_path, tmp_path / "ref", tmp_path / "ref.log"), cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=120)
    assert ref.returncode == 0, ref.stderr
    # the same sweep, killed with SIGKILL once some points are stored
    db = tmp_path / "run" / "sweep.sqlite"
    proc = subprocess.Popen(_sweep_cmd(spec_path, tmp_path / "run", tmp_path / "run.log"), cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline, stored = time.time() + 90, 0
    while time.time() < deadline and proc.poll() is None:
        if db.exists():
            try:
                con = sqlite3.connect(db, timeout=1)
                stored = con.execute("SELECT COUNT(*) FROM points").fetchone()[0]
                con.close()
            except sqlite3.OperationalError:
                stored = 0
            if stored >= 5:
                break
        time.sleep(0.01)
    assert proc.poll() is None, "the sweep finished before it could be killed: give it more points"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    before = _rows(db)
    assert 5 <= len(before) < n
    resumed = subprocess.run(_sweep_cmd(spec_path, tmp_path / "run", tmp_path / "run.log", "--resume"), cwd=ROOT,
                             env=env, capture_output=True, text=True, timeout=120)
    assert resumed.returncode == 0, resumed.stderr
    assert f"{len(before)} already done" in resumed.stdout
    after, reference = _rows(db), _rows(tmp_path / "ref" / "sweep.sqlite")
    assert after == reference                         # same ids, status, errors, metrics; computations all 1
    assert all(r[3] == 1 for r in after.values())
    log = (tmp_path / "run.log").read_text().split()
    assert all(log.count(pid) == 1 for pid in before)  # nothing stored before the kill was computed again
    assert set(log) == set(after) and len(log) - len(set(log)) <= 1   # at most the one in-flight point twice


def test_cli_error_is_one_line(tmp_path, capsys):
    from nmllm.cli import main
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(_spec(knobs={"tile_size": []})))
    assert main(["sweep", str(bad), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["nmllm sweep: error: knob 'tile_size' has an empty range: give at least one value"]


# ------------------------------------------------------------------------------------ quality
def test_quality_of_a_random_tiny_model(tmp_path):
    import torch

    from models.mmfree.checkpoint import save_checkpoint
    from models.mmfree.config import preset
    from models.mmfree.model import MMFreeForCausalLM
    from models.text.tokenizer import save_tokenizer, train_tokenizer_from_iterator

    text = ("The quick brown fox jumps over the lazy dog. " * 40 + "A crossbar array sums currents on its bit lines. " * 40)
    (tmp_path / "text.txt").write_text(text)
    save_tokenizer(train_tokenizer_from_iterator(text.split(". "), 300), tmp_path / "tokenizer.json")
    torch.manual_seed(0)
    save_checkpoint(MMFreeForCausalLM(preset("tiny", vocab_size=300)), tmp_path / "ckpt")
    spec = load_spec(_spec(models=[str(tmp_path / "ckpt")], knobs={"preset": ["crossbar"], "adc_bits": [3, 8]},
                           metrics=["quality"], quality={"checkpoint": str(tmp_path / "ckpt"), "tokens": 24,
                                                         "text": str(tmp_path / "text.txt")}))
    res = {p.knobs["adc_bits"]: evaluate_point(p.to_dict(), {"metrics": spec.metrics, "quality": spec.quality})
           for p in spec.points()}
    assert all(r["status"] == "ok" for r in res.values()), res
    m3, m8 = res[3]["metrics"], res[8]["metrics"]
    assert m8["quality_engine"] == "integer+crossbar" and m8["quality_tokens"] == 24
    assert 1.0 < m8["perplexity"] < 1e6 and m3["perplexity"] != m8["perplexity"]
    digital = load_spec(_spec(models=[str(tmp_path / "ckpt")], metrics=["quality"], quality={
        "checkpoint": str(tmp_path / "ckpt"), "tokens": 24, "text": str(tmp_path / "text.txt")})).points()[0]
    r = evaluate_point(digital.to_dict(), {"metrics": ("system", "quality"), "quality": spec.quality})
    assert r["metrics"]["quality_engine"] == "integer" and r["metrics"]["perplexity"] > 1.0


# ------------------------------------------------------------------------------------ HTML report in Chromium
def _chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        exe = shutil.which(name)
        if exe:
            return exe
    pytest.fail("headless Chromium is needed for the report test: apt-get install chromium")


def test_report_loads_in_chromium_shows_plots_and_sorts(tmp_path):
    exe = _chromium()
    spec = load_spec(_spec(knobs={"preset": ["loihi1", "loihi2-estimate", "vck190"], "fill": [0.5, 1.0],
                                  "cores_per_chip": [128, 100]}))   # 100: not a multiple of 32 routers (fails)
    store = Store(tmp_path / "sweep.sqlite")
    run_sweep(spec, store, workers=1, processes=False, progress=False)
    out = finish(spec, store, tmp_path)
    store.close()
    assert len(out["plots"]) >= 2

    def dom(fragment: str) -> str:
        profile = tmp_path / f"profile{len(fragment)}"
        done = subprocess.run([exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                               "--disable-component-update", "--disable-sync", "--no-first-run",
                               f"--user-data-dir={profile}", "--virtual-time-budget=5000", "--dump-dom",
                               out["report"].resolve().as_uri() + fragment],
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr[-2000:]
        return done.stdout

    def column(html: str, col: str) -> list:
        head = re.search(r"<thead><tr>(.*?)</tr></thead>", html).group(1)
        idx = re.findall(r'<th data-col="([^"]+)"', head).index(col)
        body = re.search(r"<tbody>(.*?)</tbody>", html, re.S).group(1)
        rows = re.findall(r"<tr[^>]*>(.*?)</tr>", body)
        return [re.findall(r'<td data-v="([^"]*)"', r)[idx] for r in rows]

    page = dom("#sort=tokens_per_s:desc")
    n = len(out["plots"])
    assert f'data-loaded="{n}"' in page and f"plots loaded: {n}/{n}" in page
    assert 'data-sorted="tokens_per_s:desc"' in page
    tps = column(page, "tokens_per_s")
    values = [float(v) for v in tps if v]
    assert len(values) == 6 and values == sorted(values, reverse=True)
    assert all(v == "" for v in tps[6:])          # failed points (no tokens/s) sort last
    page = dom("#sort=energy_per_token_j")
    e = [float(v) for v in column(page, "energy_per_token_j") if v]
    assert 'data-sorted="energy_per_token_j:asc"' in page and e == sorted(e)
