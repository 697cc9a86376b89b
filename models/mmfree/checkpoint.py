"""Checkpoint I/O in the Hugging Face layout of the released MatMul-free LM.

A checkpoint is a local directory holding ``config.json`` (upstream ``HGRNBitConfig`` field names,
``"model_type": "hgrn_bit"``) and ``model.safetensors`` with the upstream keys::

    model.embeddings.weight                                   (vocab, hidden)
    model.lower_bounds                                        (layers, hidden)   if use_lower_bound
    model.layers.{l}.attn_norm.weight                         (hidden,)
    model.layers.{l}.attn.{i,f,g}_proj.weight                 (input_dim, hidden)
    model.layers.{l}.attn.{i,f,g}_proj.norm.weight            (hidden,)
    model.layers.{l}.attn.g_norm.weight                       (input_dim,)
    model.layers.{l}.attn.o_proj.weight                       (hidden, input_dim)
    model.layers.{l}.attn.o_proj.norm.weight                  (input_dim,)
    model.layers.{l}.mlp_norm.weight                          (hidden,)
    model.layers.{l}.mlp.gate_proj.weight                     (2 * intermediate, hidden)
    model.layers.{l}.mlp.gate_proj.norm.weight                (hidden,)
    model.layers.{l}.mlp.down_proj.weight                     (hidden, intermediate)
    model.layers.{l}.mlp.down_proj.norm.weight                (intermediate,)
    model.norm.weight                                         (hidden,)
    lm_head.weight                                            (vocab, hidden)    absent if tied
    lm_head.norm.weight                                       (hidden,)

A directory downloaded from ``ridger/MMfreeLM-370M`` (or -1.3B, -2.7B) loads unchanged: unknown extra
``config.json`` fields are kept, sharded ``model.safetensors.index.json`` checkpoints and a
``pytorch_model.bin`` fallback are read too. Tensors may be stored as F32, F16 or BF16; they are cast to
the requested dtype (float32 by default); a tensor holding a NaN or an infinity is refused. Every problem
raises :class:`CheckpointError` with one line naming the file, the key or field, and the fix.
``nmllm checkpoint convert SRC DST --dtype float16`` (:mod:`nmllm.commands.checkpoint`) re-saves a
checkpoint in another dtype.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Optional

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from models.mmfree.config import MODEL_TYPE, MMFreeConfig
from models.mmfree.model import MMFreeForCausalLM

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
WEIGHTS_INDEX_NAME = "model.safetensors.index.json"
TORCH_WEIGHTS_NAME = "pytorch_model.bin"
#: dtypes accepted in a checkpoint file (safetensors names)
FLOAT_DTYPES = ("F32", "F16", "BF16")
_TORCH_TO_ST = {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16", torch.float64: "F64",
                torch.int8: "I8", torch.int16: "I16", torch.int32: "I32", torch.int64: "I64",
                torch.uint8: "U8", torch.bool: "BOOL"}


class CheckpointError(ValueError):
    """A checkpoint directory that cannot be loaded; the message names the problem and the fix."""


def expected_shapes(config: MMFreeConfig) -> dict[str, tuple[int, ...]]:
    """Every checkpoint key of ``config`` with its shape, in upstream order."""
    d, e, m, V = config.hidden_size, config.input_dim, config.mlp_intermediate_size, config.vocab_size
    shapes: dict[str, tuple[int, ...]] = {"model.embeddings.weight": (V, d)}
    if config.use_lower_bound:
        shapes["model.lower_bounds"] = (config.num_hidden_layers, d)
    for li in range(config.num_hidden_layers):
        p = f"model.layers.{li}"
        shapes[f"{p}.attn_norm.weight"] = (d,)
        spike = config.token_mixer == "spike_attention"
        for proj in ("q_proj", "k_proj", "v_proj") if spike else ("i_proj", "f_proj", "g_proj"):
            shapes[f"{p}.attn.{proj}.weight"] = (e, d)
            shapes[f"{p}.attn.{proj}.norm.weight"] = (d,)
        if not spike:
            shapes[f"{p}.attn.g_norm.weight"] = (e,)
        shapes[f"{p}.attn.o_proj.weight"] = (d, e)
        shapes[f"{p}.attn.o_proj.norm.weight"] = (e,)
        shapes[f"{p}.mlp_norm.weight"] = (d,)
        shapes[f"{p}.mlp.gate_proj.weight"] = (2 * m, d)
        shapes[f"{p}.mlp.gate_proj.norm.weight"] = (d,)
        shapes[f"{p}.mlp.down_proj.weight"] = (d, m)
        shapes[f"{p}.mlp.down_proj.norm.weight"] = (m,)
    shapes["model.norm.weight"] = (d,)
    if not config.tie_word_embeddings:
        shapes["lm_head.weight"] = (V, d)
    shapes["lm_head.norm.weight"] = (d,)
    return shapes


# ---------------------------------------------------------------------------- save
def _atomic_write_bytes(path: Path, write) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        write(tmp)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)   # safetensors creates 0600 files; use the usual permissions
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def checkpoint_state_dict(model: MMFreeForCausalLM, dtype: Optional[torch.dtype] = None) -> dict[str, torch.Tensor]:
    """The tensors a checkpoint stores (upstream keys; tied ``lm_head.weight`` omitted), contiguous
    CPU copies in ``dtype`` (default: as the model holds them)."""
    shapes = expected_shapes(model.config)
    sd = model.state_dict()
    out = {}
    for k in shapes:
        t = sd[k].detach().to("cpu")
        if dtype is not None:
            t = t.to(dtype)
        out[k] = t.contiguous().clone()
    return out


def save_checkpoint(model: MMFreeForCausalLM, directory: str | os.PathLike,
                    dtype: Optional[torch.dtype] = None) -> Path:
    """Write ``config.json`` and ``model.safetensors`` into ``directory`` (created if needed), each
    atomically. ``dtype`` (e.g. ``torch.float16``) casts the stored tensors; default keeps float32."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tensors = checkpoint_state_dict(model, dtype)
    _atomic_write_bytes(directory / WEIGHTS_NAME, lambda p: save_file(tensors, str(p), metadata={"format": "pt"}))
    text = model.config.to_json()
    _atomic_write_bytes(directory / CONFIG_NAME, lambda p: p.write_text(text, encoding="utf-8"))
    return directory


# ---------------------------------------------------------------------------- load
def load_config(directory: str | os.PathLike) -> MMFreeConfig:
    """Read and validate ``config.json`` of a checkpoint directory."""
    directory = Path(directory)
    if not directory.is_dir():
        raise CheckpointError(f"{directory}: not a checkpoint directory; pass a folder holding {CONFIG_NAME} and {WEIGHTS_NAME}")
    path = directory / CONFIG_NAME
    if not path.exists():
        raise CheckpointError(f"{path}: missing {CONFIG_NAME}; a checkpoint directory needs {CONFIG_NAME} and {WEIGHTS_NAME} (write them with models.mmfree.checkpoint.save_checkpoint)")
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CheckpointError(f"{path}: not valid JSON ({err}); restore the file from the original checkpoint") from None
    if not isinstance(raw, dict):
        raise CheckpointError(f"{path}: expected a JSON object, got {type(raw).__name__}; restore the file from the original checkpoint")
    mt = raw.get("model_type")
    if mt != MODEL_TYPE:
        raise CheckpointError(f"{path}: unknown model_type {mt!r}; only {MODEL_TYPE!r} (MatMul-free LM) checkpoints are supported")
    try:
        return MMFreeConfig.from_dict(raw)
    except (TypeError, ValueError) as err:
        raise CheckpointError(f"{path}: invalid config: {err}") from None


def _weight_files(directory: Path) -> list[Path]:
    single = directory / WEIGHTS_NAME
    if single.exists():
        return [single]
    index = directory / WEIGHTS_INDEX_NAME
    if index.exists():
        try:
            weight_map = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
        except (json.JSONDecodeError, KeyError, TypeError) as err:
            raise CheckpointError(f"{index}: not a valid safetensors index ({err!r}); re-download it") from None
        files = sorted({directory / f for f in weight_map.values()})
        for f in files:
            if not f.exists():
                raise CheckpointError(f"{f}: shard named in {WEIGHTS_INDEX_NAME} is missing; re-download it")
        return files
    if (directory / TORCH_WEIGHTS_NAME).exists():
        return [directory / TORCH_WEIGHTS_NAME]
    raise CheckpointError(f"{directory}: missing {WEIGHTS_NAME}; a checkpoint directory needs {CONFIG_NAME} and {WEIGHTS_NAME} (write them with models.mmfree.checkpoint.save_checkpoint)")


def _check_safetensors_size(path: Path) -> None:
    """Catch truncation before safetensors does, to name the byte counts."""
    size = path.stat().st_size
    if size < 8:
        raise CheckpointError(f"{path}: truncated or corrupt safetensors file ({size} bytes, no header); re-save or re-download it")
    with open(path, "rb") as fh:
        n = int.from_bytes(fh.read(8), "little")
        if 8 + n > size:
            raise CheckpointError(f"{path}: truncated or corrupt safetensors file (header of {n} bytes but file has {size}); re-save or re-download it")
        try:
            header = json.loads(fh.read(n))
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise CheckpointError(f"{path}: truncated or corrupt safetensors file (unreadable header); re-save or re-download it") from None
    if not isinstance(header, dict):
        raise CheckpointError(f"{path}: truncated or corrupt safetensors file (header is not an object); re-save or re-download it")
    end = 0
    for k, v in header.items():
        if k == "__metadata__":
            continue
        try:
            end = max(end, int(v["data_offsets"][1]))
        except (KeyError, TypeError, IndexError, ValueError):
            raise CheckpointError(f"{path}: truncated or corrupt safetensors file (bad entry for {k!r}); re-save or re-download it") from None
    if 8 + n + end > size:
        raise CheckpointError(f"{path}: truncated or corrupt safetensors file (needs {8 + n + end} bytes, has {size}); re-save or re-download it")


def _read_tensors(files: list[Path]) -> dict[str, tuple[Path, str, tuple[int, ...], object]]:
    """key → (file, dtype name, shape, loader) without reading tensor data."""
    entries: dict[str, tuple[Path, str, tuple[int, ...], object]] = {}
    for path in files:
        if path.name == TORCH_WEIGHTS_NAME:
            try:
                sd = torch.load(path, map_location="cpu", weights_only=True)
            except Exception as err:  # noqa: BLE001 - any unpickling failure means a corrupt file
                raise CheckpointError(f"{path}: truncated or corrupt PyTorch weights file ({type(err).__name__}); re-download it") from None
            for k, t in sd.items():
                entries[k] = (path, _TORCH_TO_ST.get(t.dtype, str(t.dtype)), tuple(t.shape), (lambda t=t: t))
            continue
        _check_safetensors_size(path)
        try:
            with safe_open(str(path), framework="pt") as fh:
                for k in fh.keys():
                    sl = fh.get_slice(k)
                    entries[k] = (path, sl.get_dtype(), tuple(sl.get_shape()), None)
        except SafetensorError as err:
            raise CheckpointError(f"{path}: truncated or corrupt safetensors file ({err}); re-save or re-download it") from None
    return entries


def load_state_dict(directory: str | os.PathLike, config: Optional[MMFreeConfig] = None,
                    dtype: torch.dtype = torch.float32) -> dict[str, torch.Tensor]:
    """Validated tensors of a checkpoint directory, cast to ``dtype``, keyed as upstream."""
    directory = Path(directory)
    config = load_config(directory) if config is None else config
    files = _weight_files(directory)
    entries = _read_tensors(files)
    shapes = expected_shapes(config)
    where = files[0] if len(files) == 1 else directory
    tied_extra = {"lm_head.weight"} if config.tie_word_embeddings else set()
    missing = [k for k in shapes if k not in entries]
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise CheckpointError(f"{where}: missing key {missing[0]!r}{more} required by config.json; the weights do not match the config (re-save the checkpoint or fix config.json)")
    unexpected = [k for k in entries if k not in shapes and k not in tied_extra]
    if unexpected:
        more = f" (and {len(unexpected) - 1} more)" if len(unexpected) > 1 else ""
        raise CheckpointError(f"{where}: unexpected key {unexpected[0]!r}{more} not in an hgrn_bit model of this config.json; the weights do not match the config (re-save the checkpoint or fix config.json)")
    for k, shape in shapes.items():
        path, dt, got, _ = entries[k]
        if got != shape:
            raise CheckpointError(f"{path}: key {k!r} has shape {got}, expected {shape} from config.json; the weights do not match the config")
        if dt not in FLOAT_DTYPES:
            raise CheckpointError(f"{path}: key {k!r} has dtype {dt}, expected one of {', '.join(FLOAT_DTYPES)}; re-save the checkpoint with floating-point weights")
    out: dict[str, torch.Tensor] = {}
    by_file: dict[Path, list[str]] = {}
    for k in shapes:
        by_file.setdefault(entries[k][0], []).append(k)
    for path, keys in by_file.items():
        if path.name == TORCH_WEIGHTS_NAME:
            for k in keys:
                out[k] = _finite(path, k, entries[k][3]()).to(dtype)
            continue
        try:
            with safe_open(str(path), framework="pt") as fh:
                for k in keys:
                    out[k] = _finite(path, k, fh.get_tensor(k)).to(dtype)
        except SafetensorError as err:
            raise CheckpointError(f"{path}: truncated or corrupt safetensors file ({err}); re-save or re-download it") from None
    return out


def _finite(path: Path, key: str, t: torch.Tensor) -> torch.Tensor:
    """``t`` as stored, or :class:`CheckpointError` naming the tensor if it holds a NaN or an infinity."""
    bad = int((~torch.isfinite(t)).sum())
    if bad:
        raise CheckpointError(f"{path}: tensor {key!r} holds {bad} NaN or infinite value(s) of {t.numel()}; the weights "
                              f"are corrupt or training diverged: load an earlier checkpoint or re-download it")
    return t


def load_checkpoint(directory: str | os.PathLike, dtype: torch.dtype = torch.float32) -> MMFreeForCausalLM:
    """Build the model of ``config.json`` and load ``model.safetensors`` into it (eval mode)."""
    config = load_config(directory)
    tensors = load_state_dict(directory, config, dtype)
    model = MMFreeForCausalLM(config, init=False).to(dtype)
    if config.tie_word_embeddings:
        tensors = dict(tensors)
        tensors["lm_head.weight"] = tensors["model.embeddings.weight"]
    model.load_state_dict(tensors, strict=True)
    model.eval()
    return model
