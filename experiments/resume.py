"""Resumable results of a long study: one JSON file bound to the settings that produce it, rewritten
atomically after every point, so a kill loses at most the point in flight (``experiments/resume.py``).

The file holds ``{"settings": {...}, "points": {key: record}}``. Opening it again with other settings is
refused with one line naming the first setting that differs, so points of different runs never mix::

    res = Results(out / "study.partial.json", {"model": args.model, "window": args.window})
    for key in res.pending(keys, desc="study", progress=True):   # tqdm bar starts at the resumed count
        res.put(key, measure(key))                                # stored and written before the next point
    res.finish(out / "study.json", {"rows": [res[key] for key in keys]})   # final output; partial file deleted

Name each setting after its command-line flag (``max_tokens`` for ``--max-tokens``): the refusal quotes it.
:func:`write_json` is the atomic write (temp file + ``os.replace``) for final outputs too.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterable, Iterator

__all__ = ["Results", "write_json"]


def write_json(path: str | Path, obj: Any) -> Path:
    """Write ``obj`` as indented JSON to ``path`` atomically: a reader (or a kill) sees the old file or the new
    one, never a torn one. Creates the parent folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(json.dumps(obj, indent=1) + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    return path


def _plain(obj: Any) -> Any:
    """``obj`` as it reads back from JSON (tuples become lists), so fresh and resumed points are alike."""
    return json.loads(json.dumps(obj))


def _show(settings: dict, key: str) -> str:
    return repr(settings[key]) if key in settings else "(unset)"


class Results:
    """The points of one study in ``path``, bound to ``settings`` (a JSON-able dict).

    A missing file starts empty; an existing one is loaded when its settings equal ``settings`` and refused
    (ValueError, one line) otherwise. ``resumed`` counts the points loaded.
    """

    def __init__(self, path: str | Path, settings: dict):
        self.path = Path(path)
        self.settings = _plain(settings)
        self.points: dict[str, Any] = {}
        if self.path.exists():
            try:
                old = json.loads(self.path.read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                raise ValueError(f"{self.path} is not a readable results file ({type(exc).__name__}): delete it to "
                                 f"start over") from None
            if not isinstance(old, dict) or not isinstance(old.get("settings"), dict) or "points" not in old:
                raise ValueError(f"{self.path} records no settings (written by an older version): delete it to start "
                                 f"over, or choose another output")
            was = old["settings"]
            for k in list(self.settings) + [k for k in was if k not in self.settings]:
                a, b = (_show(d, k) for d in (was, self.settings))
                if a != b:
                    raise ValueError(f"{self.path} holds results of other settings: {k}={a} there, {k}={b} now; rerun "
                                     f"with the same settings to resume, or delete the file to start over")
            self.points = old["points"]
        self.resumed = len(self.points)

    def __contains__(self, key: str) -> bool:
        return key in self.points

    def __getitem__(self, key: str) -> Any:
        return self.points[key]

    def get(self, key: str, default: Any = None) -> Any:
        return self.points.get(key, default)

    def put(self, key: str, record: Any) -> Any:
        """Store ``record`` under ``key`` and rewrite the file atomically; returns the record as stored."""
        self.points[key] = _plain(record)
        self._save()
        return self.points[key]

    def _save(self) -> None:
        write_json(self.path, {"settings": self.settings, "points": self.points})

    def pending(self, keys: Iterable[str], desc: str, unit: str = "point", progress: bool = True) -> Iterator[str]:
        """The ``keys`` not stored yet, in order, under a tqdm bar over all ``keys`` that starts at the
        number already stored (shown as ``resumed``); the bar advances when the caller asks for the next key."""
        from tqdm import tqdm

        keys = list(keys)
        todo = [k for k in keys if k not in self.points]
        done = len(keys) - len(todo)
        with tqdm(total=len(keys), initial=done, desc=desc, unit=unit, disable=not progress, dynamic_ncols=True) as bar:
            if done:
                bar.set_postfix(resumed=done)
            for k in todo:
                yield k
                bar.update(1)

    def finish(self, path: str | Path, record: Any) -> Any:
        """Write the final output ``record`` to ``path`` atomically, then delete this (partial) results file;
        returns ``record``."""
        write_json(path, record)
        self.path.unlink(missing_ok=True)
        return record
