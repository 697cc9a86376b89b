"""Training data: the shared text corpus, a one-time uint16 token cache, and window sampling.

The corpus is ``<data>/corpus/wikipedia_enwiki2015/*.txt`` and ``<data>/corpus/gutenberg/*.txt`` (one
paragraph a line). ``<data>`` is ``$NMLLM_DATA`` when set, else ``../shared/data`` relative to the
repository root. The data is other people's text: it is read in place, never copied into the repository.

:func:`build_token_cache` tokenizes the corpus exactly once into ``train.bin`` / ``val.bin`` (flat uint16
token ids, ``</s>`` between files) plus ``meta.json`` describing what was tokenized; a later call with
the same tokenizer and files returns the existing cache. The validation split is the last
``val_fraction`` of the lines of every file (held out from training). :class:`TokenWindows` memory-maps
a ``.bin`` file and samples training windows from a ``numpy.random.Generator`` whose state is the
data position saved in a training checkpoint.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from pathlib import Path
from typing import Iterator, Optional, Sequence

import numpy as np
import torch

REPO_ROOT = Path(__file__).resolve().parents[2]
CORPUS_SUBDIRS = ("wikipedia_enwiki2015", "gutenberg")
CACHE_VERSION = 1


def data_root(root: str | os.PathLike | None = None) -> Path:
    """The shared data folder: ``root`` if given, else ``$NMLLM_DATA``, else ``<repo>/../shared/data``."""
    if root is not None:
        return Path(root)
    env = os.environ.get("NMLLM_DATA")
    if env:
        return Path(env)
    return (REPO_ROOT / ".." / "shared" / "data").resolve()


def corpus_files(root: str | os.PathLike | None = None) -> list[Path]:
    """Sorted text files of the training corpus (Wikipedia shards, then Gutenberg books)."""
    base = data_root(root) / "corpus"
    files: list[Path] = []
    for sub in CORPUS_SUBDIRS:
        files.extend(sorted((base / sub).glob("*.txt")))
    if not files:
        raise FileNotFoundError(f"no corpus files under {base}/{{{','.join(CORPUS_SUBDIRS)}}}; "
                                "set NMLLM_DATA to the folder that holds corpus/")
    return files


def iter_lines(files: Sequence[Path], max_bytes: Optional[int] = None) -> Iterator[str]:
    """Lines (with their newline) of ``files`` in order, stopping after ``max_bytes`` bytes in total."""
    budget = math.inf if max_bytes is None else int(max_bytes)
    for path in files:
        with open(path, encoding="utf-8") as fh:
            for line in fh:
                if budget <= 0:
                    return
                budget -= len(line.encode("utf-8"))
                yield line


def _split_lines(lines: list[str], val_fraction: float) -> tuple[list[str], list[str]]:
    n_val = int(math.ceil(len(lines) * val_fraction)) if val_fraction > 0 else 0
    n_val = min(n_val, max(len(lines) - 1, 0))
    return lines[: len(lines) - n_val], lines[len(lines) - n_val:]


def _encode_into(tokenizer, lines: list[str], fh, batch: int = 2048) -> int:
    n = 0
    for i in range(0, len(lines), batch):
        encs = tokenizer.encode_batch(lines[i:i + batch])
        ids = [t for e in encs for t in e.ids]
        np.asarray(ids, dtype=np.uint16).tofile(fh)
        n += len(ids)
    return n


def cache_key(tokenizer_json: str, files: Sequence[Path], val_fraction: float, max_bytes: Optional[int]) -> dict:
    """What a token cache was built from (compared on reuse)."""
    return {
        "version": CACHE_VERSION,
        "tokenizer_sha256": hashlib.sha256(tokenizer_json.encode("utf-8")).hexdigest(),
        "files": [[p.name, p.stat().st_size] for p in files],
        "val_fraction": val_fraction,
        "max_bytes": max_bytes,
    }


def build_token_cache(tokenizer, files: Sequence[Path], cache_dir: str | os.PathLike, eos_id: int,
                      val_fraction: float = 0.01, max_bytes: Optional[int] = None,
                      progress: bool = False) -> dict:
    """Tokenize ``files`` once into ``cache_dir/{train,val}.bin`` (uint16) and return ``meta.json``'s
    content. If a cache built from the same tokenizer, files, split and byte limit exists, it is reused
    without tokenizing again. ``max_bytes`` caps the bytes read in total (files in order)."""
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    if tokenizer.get_vocab_size() > 65536:
        raise ValueError(f"vocab size {tokenizer.get_vocab_size()} does not fit the uint16 token cache")
    key = cache_key(tokenizer.to_str(), files, val_fraction, max_bytes)
    meta_path = cache_dir / "meta.json"
    if meta_path.exists():
        meta = json.loads(meta_path.read_text())
        if meta.get("key") == key and (cache_dir / "train.bin").exists() and (cache_dir / "val.bin").exists():
            return meta
    budget = math.inf if max_bytes is None else int(max_bytes)
    counts = {"train": 0, "val": 0}
    tmp = {s: cache_dir / f"{s}.bin.tmp" for s in counts}
    fhs = {s: open(tmp[s], "wb") for s in counts}
    try:
        it = files
        if progress:
            from tqdm import tqdm
            it = tqdm(files, desc="tokenize corpus", unit="file")
        for path in it:
            if budget <= 0:
                break
            lines = []
            with open(path, encoding="utf-8") as fh:
                for line in fh:
                    if budget <= 0:
                        break
                    budget -= len(line.encode("utf-8"))
                    lines.append(line)
            train_lines, val_lines = _split_lines(lines, val_fraction)
            for split, part in (("train", train_lines), ("val", val_lines)):
                if part:
                    counts[split] += _encode_into(tokenizer, part, fhs[split])
                    np.asarray([eos_id], dtype=np.uint16).tofile(fhs[split])
                    counts[split] += 1
    finally:
        for fh in fhs.values():
            fh.flush()
            os.fsync(fh.fileno())
            fh.close()
    for split in counts:
        os.replace(tmp[split], cache_dir / f"{split}.bin")
    meta = {"key": key, "tokens": counts, "dtype": "uint16"}
    tmp_meta = cache_dir / "meta.json.tmp"
    tmp_meta.write_text(json.dumps(meta, indent=1))
    os.replace(tmp_meta, meta_path)
    return meta


class TokenWindows:
    """Windows of ``seq_len + 1`` tokens from a uint16 token file (memory-mapped, never loaded whole)."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.tokens = np.memmap(self.path, dtype=np.uint16, mode="r")

    def __len__(self) -> int:
        return int(self.tokens.shape[0])

    def sample(self, rng: np.random.Generator, batch_size: int, seq_len: int) -> torch.Tensor:
        """``batch_size`` windows at uniformly random offsets: int64 tensor (batch, seq_len + 1)."""
        n = len(self) - seq_len - 1
        if n <= 0:
            raise ValueError(f"{self.path} has {len(self)} tokens, fewer than seq_len + 1 = {seq_len + 1}")
        starts = rng.integers(0, n + 1, size=batch_size)
        out = np.stack([np.asarray(self.tokens[s:s + seq_len + 1], dtype=np.int64) for s in starts])
        return torch.from_numpy(out)

    def sequential(self, batch_size: int, seq_len: int, max_batches: int) -> Iterator[torch.Tensor]:
        """Non-overlapping windows from the start of the file, in order (a fixed validation set)."""
        w = seq_len + 1
        n_windows = min((len(self) - 1) // seq_len, max_batches * batch_size)
        for b in range(0, n_windows, batch_size):
            rows = [np.asarray(self.tokens[i * seq_len:i * seq_len + w], dtype=np.int64)
                    for i in range(b, min(b + batch_size, n_windows))]
            rows = [r for r in rows if len(r) == w]
            if rows:
                yield torch.from_numpy(np.stack(rows))
