"""The test count and suite time as a record: ``bench/results/test_suite.json`` from pytest's JUnit XML.

``.ci/run`` runs ``make test`` with ``PYTEST_ADDOPTS=--junitxml=build/junit.xml`` and then this script, so the
README's test count and suite time come from a record with its provenance, not from prose. Records: tests
passed (baseline: tests run), and the suite's wall time in pytest (baseline: the sum of the test durations).
Run: ``python bench/record_test_suite.py build/junit.xml`` -> ``bench/results/test_suite.json``.
"""

from __future__ import annotations

import sys
import xml.etree.ElementTree as ET
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._records import record, write_records  # noqa: E402


def suite_records(junit_xml: Path) -> list[dict]:
    """Records of one pytest run from its JUnit XML file."""
    root = ET.parse(junit_xml).getroot()
    suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
    count = {k: sum(int(s.get(k, 0)) for s in suites) for k in ("tests", "failures", "errors", "skipped")}
    wall = sum(float(s.get("time", 0.0)) for s in suites)
    durations = sum(float(c.get("time", 0.0)) for s in suites for c in s.iter("testcase"))
    passed = count["tests"] - count["failures"] - count["errors"] - count["skipped"]
    case = (f"make test: {count['tests']} tests, {count['failures']} failed, {count['errors']} errors, "
            f"{count['skipped']} skipped")
    return [record("test_suite", case, "tests_passed", passed, "tests", "tests run", count["tests"]),
            record("test_suite", case, "pytest_wall_s", wall, "s", "sum of test durations", durations)]


def main(argv: list[str]) -> None:
    if len(argv) != 1 or not Path(argv[0]).is_file():
        raise SystemExit("usage: python bench/record_test_suite.py JUNIT_XML (pytest --junitxml=JUNIT_XML)")
    print(write_records("test_suite", suite_records(Path(argv[0]))))


if __name__ == "__main__":
    main(sys.argv[1:])
