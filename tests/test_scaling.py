"""``nmllm scaling`` (experiments/scaling.py): provenance, the static range of every row, resuming."""

import json

import pytest

from nmllm.cli import main


def test_scaling_record_carries_provenance(tmp_path):
    assert main(["scaling", "--presets", "loihi1", "--scales", "125m", "--out", str(tmp_path), "--no-plots"]) == 0
    doc = json.loads((tmp_path / "scaling.json").read_text())
    assert [(r["preset"], r["model"]) for r in doc["rows"]] == [("loihi1", "125m")]
    p = doc["provenance"]
    assert {"git_sha", "command", "packages", "machine", "load_average", "date"} <= set(p) and p["machine"]
    assert not list(tmp_path.glob("*.tmp"))                 # written atomically: no temporary file left


def test_scaling_rows_carry_the_static_range_and_the_default_presets_include_loihi1(tmp_path):
    """Every row states its energy at both ends of its preset's static range (the same simulation: only the
    static part moves); loihi1 is back among the default presets (multicast records)."""
    from experiments.scaling import DEFAULT_PRESETS, static_range_table

    assert DEFAULT_PRESETS[0] == "loihi1"
    assert main(["scaling", "--presets", "loihi1,vck190", "--scales", "125m", "--out", str(tmp_path), "--no-plots"]) == 0
    assert not (tmp_path / "scaling.partial.json").exists()
    rows = json.loads((tmp_path / "scaling.json").read_text())["rows"]
    for r in rows:
        lo, hi = r["static_range_j"]
        wl, wh = r["static_range_w_per_chip"]
        static = r["energy_j"]["static"]
        assert lo <= static <= hi
        assert lo / static == pytest.approx(wl / r["static_w_per_chip"], rel=1e-9)
        assert hi / static == pytest.approx(wh / r["static_w_per_chip"], rel=1e-9)
    table = static_range_table(rows)
    assert table.count("\n") == 2 + len(rows) and "loihi1 (chip) | 125m*" in table


def test_scaling_points_resume_from_the_partial_file(tmp_path):
    """A rerun with the same presets and scales takes the stored points instead of simulating them again."""
    from experiments.scaling import run_scaling

    partial = tmp_path / "scaling.partial.json"
    first = run_scaling(["loihi2-estimate"], ["125m"], progress=False, partial=partial)
    again = run_scaling(["loihi2-estimate"], ["125m"], progress=False, partial=partial)
    assert again == first                        # the sim wall times too: nothing was simulated again
    with pytest.raises(ValueError, match="holds results of other settings: scales="):
        run_scaling(["loihi2-estimate"], ["370m"], progress=False, partial=partial)
