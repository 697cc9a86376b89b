"""Threshold calibration of a transformer for spike conversion, cached on disk
(``models/transformer/calibration.py``).

:func:`get_calibration` runs :func:`models.transformer.convert.calibrate` on corpus text (``<data>/corpus``,
never an evaluation set) and saves the result in ``runs/spike/calib_<model>_<tokens>.pt``; a later call
with the same model and token count loads it. torch is imported inside the function, so command modules
can read :data:`RUNS` while building their parsers.
"""

from __future__ import annotations

import re
import sys
import time
from pathlib import Path
from typing import Optional

__all__ = ["RUNS", "get_calibration"]

#: ``<checkout>/runs/spike``: calibration caches and the spike studies' default outputs.
RUNS = Path(__file__).resolve().parents[2] / "runs" / "spike"


def _slug(ref: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(str(ref)).name or str(ref))


def get_calibration(model, tokenizer, model_ref: str, n_tokens: int = 4096, cache: Optional[str] = None,
                    seq_len: int = 256, progress: bool = True):
    """Calibration of ``model`` on ``n_tokens`` corpus tokens, from ``cache`` if it exists (else computed
    and saved there; default ``runs/spike/calib_<model>_<n_tokens>.pt``)."""
    import torch

    from models.transformer.convert import Calibration, calibrate, calibration_token_batches

    path = Path(cache) if cache else RUNS / f"calib_{_slug(model_ref)}_{n_tokens}.pt"
    if path.is_file():
        raw = torch.load(path, weights_only=True)
        if "channel_absmax" in raw:
            return Calibration(raw["samples"], raw["absmax"], int(raw["tokens"]), raw.get("source", "corpus"),
                               raw["sample_channels"], raw["channel_absmax"])
    batches = calibration_token_batches(tokenizer, n_tokens=n_tokens, seq_len=min(seq_len, n_tokens))
    t0 = time.perf_counter()
    calib = calibrate(model, batches, progress=progress)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"samples": calib.samples, "absmax": calib.absmax, "tokens": calib.tokens,
                "source": f"corpus ({n_tokens} tokens)", "sample_channels": calib.sample_channels,
                "channel_absmax": calib.channel_absmax}, path)
    print(f"calibrated on {calib.tokens} corpus tokens in {time.perf_counter() - t0:.0f} s -> {path}", file=sys.stderr)
    return calib
