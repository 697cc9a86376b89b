"""The results store: one SQLite row per finished point, committed as soon as it arrives.

A store is tied to one spec (its hash and text are kept in ``meta`` with the project version), so
``--resume`` after a kill skips exactly the points already written ok and runs the failed ones again; a
row is either fully committed or absent (SQLite transactions), so nothing is lost. ``computations``
counts how often a point's result was written: 1, plus one for each retry of a failed point (a point
computed twice otherwise is a bug). Export: CSV and Parquet, one column per knob (``knob.<name>``) and
per metric.
"""

from __future__ import annotations

import csv
import json
import sqlite3
import subprocess
import time
from pathlib import Path

__all__ = ["Store", "project_version"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS points (
    id TEXT PRIMARY KEY, idx INTEGER NOT NULL, model TEXT NOT NULL, knobs TEXT NOT NULL,
    status TEXT NOT NULL, error TEXT, metrics TEXT NOT NULL, wall_s REAL, worker TEXT,
    finished_at REAL NOT NULL, computations INTEGER NOT NULL DEFAULT 1);
"""


def project_version() -> str:
    """The installed package version, plus the git commit of the working tree when there is one."""
    try:
        from importlib.metadata import version
        v = version("neuromorphic-llm")
    except Exception:
        v = "unknown"
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=5,
                              cwd=Path(__file__).resolve().parent).stdout.strip()
        if head:
            v += f"+g{head}"
    except (OSError, subprocess.SubprocessError):
        pass
    return v


class Store:
    """``<out>/sweep.sqlite``: the spec it belongs to and one row per finished point."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(self.path, timeout=30)
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.executescript(_SCHEMA)
        self.db.commit()

    # ------------------------------------------------------------------ spec binding
    def meta(self) -> dict[str, str]:
        return dict(self.db.execute("SELECT key, value FROM meta"))

    def bind(self, spec, resume: bool) -> None:
        """Tie the store to ``spec``; refuse a store of another spec, or an existing one without ``resume``."""
        meta = self.meta()
        if meta:
            if meta.get("spec_hash") != spec.hash:
                raise ValueError(f"{self.path} holds a sweep of another spec (hash {meta.get('spec_hash', '?')[:12]}, "
                                 f"this one {spec.hash[:12]}): choose another --out or delete it")
            if not resume and self.count():
                raise ValueError(f"{self.path} already holds {self.count()} points of this spec: pass --resume to "
                                 f"continue it, or choose another --out")
            return
        with self.db:
            self.db.executemany("INSERT INTO meta VALUES (?, ?)", [
                ("spec_hash", spec.hash), ("spec_name", spec.name), ("spec_text", spec.text),
                ("project_version", project_version()), ("created", time.strftime("%Y-%m-%dT%H:%M:%S")),
                ("points_total", str(len(spec.points())))])

    # ------------------------------------------------------------------ rows
    def write(self, point: dict, result: dict) -> None:
        """Commit one finished point (a second write of the same point counts a recomputation)."""
        with self.db:
            self.db.execute(
                "INSERT INTO points (id, idx, model, knobs, status, error, metrics, wall_s, worker, finished_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(id) DO UPDATE SET "
                "computations = computations + 1, status = excluded.status, error = excluded.error, "
                "metrics = excluded.metrics, wall_s = excluded.wall_s, worker = excluded.worker, "
                "finished_at = excluded.finished_at",
                (point["id"], point["index"], point["model"], json.dumps(point["knobs"], sort_keys=True),
                 result["status"], result.get("error"), json.dumps(result.get("metrics", {}), sort_keys=True),
                 result.get("wall_s"), result.get("worker"), time.time()))

    def ids(self, status: str | None = None) -> set[str]:
        """Ids of the stored points (with ``status``: only those, e.g. ``"ok"`` or ``"failed"``)."""
        if status is None:
            return {r[0] for r in self.db.execute("SELECT id FROM points")}
        return {r[0] for r in self.db.execute("SELECT id FROM points WHERE status = ?", (status,))}

    def count(self, status: str | None = None) -> int:
        if status is None:
            return self.db.execute("SELECT COUNT(*) FROM points").fetchone()[0]
        return self.db.execute("SELECT COUNT(*) FROM points WHERE status = ?", (status,)).fetchone()[0]

    def rows(self) -> list[dict]:
        """Every point as a flat dict (``knob.<name>`` and metric columns), in spec order."""
        out = []
        q = "SELECT id, idx, model, knobs, status, error, metrics, wall_s, worker, computations FROM points ORDER BY idx"
        for pid, idx, model, knobs, status, error, metrics, wall, worker, comp in self.db.execute(q):
            row = {"index": idx, "id": pid, "model": Path(model).name if "/" in model else model, "status": status,
                   "error": error}
            row.update({f"knob.{k}": v for k, v in json.loads(knobs).items()})
            row.update(json.loads(metrics))
            row.update({"wall_s": wall, "worker": worker, "computations": comp})
            out.append(row)
        return out

    @staticmethod
    def columns(rows: list[dict]) -> list[str]:
        cols: list[str] = []
        for r in rows:
            cols += [k for k in r if k not in cols]
        return cols

    # ------------------------------------------------------------------ export
    def export_csv(self, path: str | Path) -> Path:
        rows = self.rows()
        path = Path(path)
        with path.open("w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=self.columns(rows))
            w.writeheader()
            for r in rows:
                w.writerow({k: json.dumps(v) if isinstance(v, (list, dict)) else v for k, v in r.items()})
        return path

    def export_parquet(self, path: str | Path) -> Path:
        import pyarrow as pa
        import pyarrow.parquet as pq
        rows = self.rows()
        cols = self.columns(rows)
        data = {}
        for c in cols:
            vals = [r.get(c) for r in rows]
            kinds = {type(v) for v in vals if v is not None}
            if not (kinds <= {int, float} or kinds == {bool} or kinds == {str}):
                vals = [None if v is None else json.dumps(v) if isinstance(v, (list, dict)) else str(v) for v in vals]
            data[c] = vals
        pq.write_table(pa.table(data), Path(path))
        return Path(path)

    def close(self) -> None:
        self.db.close()
