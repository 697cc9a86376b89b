"""``nmllm scaling`` (experiments/scaling.py): its record carries the provenance of the run."""

import json

from nmllm.cli import main


def test_scaling_record_carries_provenance(tmp_path):
    assert main(["scaling", "--presets", "loihi1", "--scales", "125m", "--out", str(tmp_path), "--no-plots"]) == 0
    doc = json.loads((tmp_path / "scaling.json").read_text())
    assert [(r["preset"], r["model"]) for r in doc["rows"]] == [("loihi1", "125m")]
    p = doc["provenance"]
    assert {"git_sha", "command", "packages", "machine", "load_average", "date"} <= set(p) and p["machine"]
    assert not list(tmp_path.glob("*.tmp"))                 # written atomically: no temporary file left
