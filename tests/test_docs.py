"""Generated docs: ``nmllm docs --check`` passes on the committed tree and names an edited cell; no results table
lives outside the generated regions; every committed benchmark record carries its provenance and its baselines."""

import argparse
import json
import shutil
import sys
from pathlib import Path

import pytest

from experiments import docs

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # bench/ is not an installed package

#: Tables with numbers that are not results (page, header line prefix).
NOT_RESULTS = {
    ("docs/mmfree.md", "| item | rule |"): "the number-format spec",
    ("README.md", "| path | holds |"): "the layout",
    ("docs/system_model.md", "| preset | what | sources |"): "what each preset is and where its constants come from",
    ("docs/spike_conversion.md", "| coding | spikes per value |"): "definitions of the spike codings",
}


#: Results tables whose record is not committed yet: (page, header prefix) -> (the record file they wait for, the
#: metric in it or None, why). When the record appears, the table must become a generated region (a test says so).
NO_RECORD_YET = {
    ("docs/crossbar.md", "| array | wires | ideal (no IR drop) vs ngspice |"):
        ("docs/crossbar/spice_check.json", None, "computed by tests/test_crossbar_spice.py, not stored"),
    ("docs/crossbar.md", "| layer | fan-in × out | base: tiles |"):
        ("docs/crossbar/token_report.json", None,
         "perplexity_sweep.json stores the cheapest setting's token report, not the base's"),
    ("docs/crossbar.md", "| setting | MVM | DAC |"):
        ("docs/crossbar/mvm_cost.json", None, "costs.mvm_cost per setting is not stored"),
    ("docs/pruning.md", "| s | lm_head | L0 i/f/g/o |"):
        ("docs/pruning/layer_sparsity.json", None,
         "computed from the stored sensitivities; the next sweep stores each row's layer_sparsity"),
}

RECORD_KEYS = {"benchmark", "case", "metric", "value", "unit", "baseline", "baseline_value", "ratio", "machine",
               "provenance"}
PROVENANCE_KEYS = {"git_sha", "git_dirty", "command", "packages", "machine", "load_average", "seed", "date"}


def _copy_records(dst: Path) -> None:
    """README, docs and every record the regions read, into ``dst``."""
    shutil.copy(ROOT / "README.md", dst)
    shutil.copytree(ROOT / "docs", dst / "docs", ignore=shutil.ignore_patterns("*.png"))
    shutil.copytree(ROOT / "bench" / "results", dst / "bench" / "results", ignore=shutil.ignore_patterns("*.png"))
    for model in ROOT.glob("models/bundled*"):
        shutil.copytree(model, dst / "models" / model.name, ignore=shutil.ignore_patterns("*.safetensors",
                                                                                          "tokenizer.json"))


def _cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    docs.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    return args.func(args)


def test_committed_docs_match_their_records():
    """The drift test: what ``nmllm docs`` writes today is what is committed."""
    assert docs.check(ROOT) == []


def test_check_names_an_edited_cell_and_docs_restores_it(tmp_path, capsys):
    _copy_records(tmp_path)
    before = docs.check(tmp_path)  # what the committed tree already reports (empty when the drift test passes)
    readme = tmp_path / "docs" / "mmfree.md"
    text = readme.read_text()
    start = text.index("<!-- nmllm-docs:bundled-perplexity -->")
    cell = text.index("| 181.59 |", start)
    readme.write_text(text[:cell] + "| 181.60 |" + text[cell + len("| 181.59 |"):])
    assert sorted(docs.check(tmp_path)) == sorted(before + ["docs/mmfree.md:bundled-perplexity"])
    assert _cli(["docs", "--check", "--root", str(tmp_path)]) == 1
    assert "stale: docs/mmfree.md:bundled-perplexity" in capsys.readouterr().err
    _cli(["docs", "--root", str(tmp_path)])
    assert readme.read_text() == text
    assert docs.check(tmp_path) == before
    assert _cli(["docs", "--check", "--root", str(tmp_path)]) == (1 if before else 0)


def test_check_names_a_region_whose_record_changed(tmp_path):
    _copy_records(tmp_path)
    before = docs.check(tmp_path)
    path = tmp_path / "bench" / "results" / "ternary_matvec.json"
    recs = json.loads(path.read_text())
    recs[0]["value"] *= 2
    path.write_text(json.dumps(recs))
    assert sorted(docs.check(tmp_path)) == sorted(before + ["docs/benchmarks.md:benchmarks"])


@pytest.mark.parametrize("text, message", [
    ("<!-- nmllm-docs:no-such -->\nx\n<!-- /nmllm-docs:no-such -->\n", "unknown region 'no-such'"),
    ("<!-- nmllm-docs:yosys -->\nx\n", "unbalanced nmllm-docs markers"),
])
def test_bad_markers_are_one_line_errors(text, message):
    with pytest.raises(ValueError, match=message) as err:
        docs.render(text, ROOT, "page.md")
    assert "\n" not in str(err.value)


def test_lint_finds_numbers_outside_markers_only():
    table = "| a | b |\n|---|---|\n| x | 12 |\n"
    words = "| a | b |\n|---|---|\n| x | y |\n"
    inside = "<!-- nmllm-docs:yosys -->\n" + table + "<!-- /nmllm-docs:yosys -->\n"
    assert docs.unmarked_tables("intro\n\n" + table) == [(3, "| a | b |")]
    assert docs.unmarked_tables(words + "\n" + inside) == []


def _unmarked():
    for page in docs.pages(ROOT):
        rel = str(page.relative_to(ROOT))
        if rel in docs.FILES:
            continue
        for line, head in docs.unmarked_tables(page.read_text()):
            yield rel, line, head


def test_no_results_table_outside_generated_regions():
    """Every table with numbers is generated, or listed as not results, or waits for a record that is named."""
    listed = list(NOT_RESULTS) + list(NO_RECORD_YET)
    stray = [f"{rel}:{line}: {head[:80]}" for rel, line, head in _unmarked()
             if not any(rel == p and head.startswith(h) for p, h in listed)]
    assert not stray, "tables with numbers outside <!-- nmllm-docs:NAME --> regions:\n" + "\n".join(stray)


@pytest.mark.parametrize("key", list(NOT_RESULTS) + list(NO_RECORD_YET), ids=lambda k: f"{k[0]}: {k[1][:30]}")
def test_listed_tables_still_exist_and_still_lack_their_record(key):
    page, head = key
    assert any(rel == page and h.startswith(head) for rel, _, h in _unmarked()), f"{key} is gone: drop it from the list"
    if key in NO_RECORD_YET:
        path, metric, _ = NO_RECORD_YET[key]
        record = ROOT / path
        waiting = not record.exists() or (metric is not None and all(r["metric"] != metric
                                                                      for r in json.loads(record.read_text())))
        assert waiting, f"{path} holds the record now: make {page} '{head}' a generated region"


def test_every_benchmark_record_carries_its_provenance():
    for path in sorted((ROOT / "bench" / "results").glob("*.json")):
        for rec in json.loads(path.read_text()):
            assert set(rec) == RECORD_KEYS, f"{path.name}: {sorted(set(rec) ^ RECORD_KEYS)}"
            assert PROVENANCE_KEYS <= set(rec["provenance"]), f"{path.name}: {rec['provenance']}"


def test_write_records_adds_provenance_and_keeps_an_older_one(tmp_path, monkeypatch):
    from bench import _records

    monkeypatch.setattr(_records, "RESULTS_DIR", tmp_path)
    kept = {**_records.record("b", "old", "m", 1.0, "s", "base", 2.0), "provenance": {"git_sha": "abc"}}
    path = _records.write_records("b", [kept, _records.record("b", "new", "m", 3.0, "s", "base", 1.5)], seed=7)
    old, new = json.loads(path.read_text())
    assert old["provenance"] == {"git_sha": "abc"}
    assert set(new) == RECORD_KEYS and PROVENANCE_KEYS <= set(new["provenance"])
    assert new["provenance"]["seed"] == 7 and new["ratio"] == 2.0
    assert list(tmp_path.iterdir()) == [path]


def test_ternary_matvec_is_compared_with_the_strong_baselines():
    """fp32 BLAS and int8 dense in the same run for every case; the NumPy int32 one only as a labelled extra."""
    recs = json.loads((ROOT / "bench" / "results" / "ternary_matvec.json").read_text())
    for case in {r["case"] for r in recs}:
        bases = [r["baseline"] for r in recs if r["case"] == case]
        assert any(b.startswith("fp32 BLAS") and "exact" in b for b in bases), bases
        assert any(b.startswith("int8 dense") for b in bases), bases
        assert all(b.startswith(("fp32 BLAS", "int8 dense", "extra, weak:")) for b in bases), bases


def test_golden_decode_is_compared_with_one_thread_dense():
    recs = json.loads((ROOT / "bench" / "results" / "golden.json").read_text())
    bases = [r["baseline"] for r in recs if r["metric"] == "decode_tokens_per_s"]
    assert "pytorch fp32 dense decode, 1 thread" in bases, bases
    layer = [r["baseline"] for r in recs if r["metric"] == "layer_tokens_per_s"]
    assert any(b.startswith("int8 dense") for b in layer), layer


JUNIT = """<?xml version="1.0" encoding="utf-8"?><testsuites><testsuite name="pytest" errors="0" failures="1"
 skipped="0" tests="3" time="12.5"><testcase classname="t" name="a" time="4.0"/><testcase classname="t" name="b"
 time="5.0"><failure message="x"/></testcase><testcase classname="t" name="c" time="2.5"/></testsuite></testsuites>"""


def test_the_test_count_comes_from_a_record(tmp_path, monkeypatch):
    """``.ci/run``'s JUnit XML -> ``test_suite.json`` -> the ``test-suite`` region."""
    from bench import _records
    from bench.record_test_suite import suite_records

    (tmp_path / "junit.xml").write_text(JUNIT)
    results = tmp_path / "bench" / "results"
    monkeypatch.setattr(_records, "RESULTS_DIR", results)
    _records.write_records("test_suite", suite_records(tmp_path / "junit.xml"))
    text, changed, errors = docs.render("<!-- nmllm-docs:test-suite -->\n<!-- /nmllm-docs:test-suite -->\n",
                                        tmp_path, "page.md")
    assert not errors and changed == ["page.md:test-suite"]
    assert "2 of 3 tests passed in 12 s of pytest" in text
