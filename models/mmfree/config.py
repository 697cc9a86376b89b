"""Configuration of the MatMul-free language model (upstream model_type ``hgrn_bit``).

The field names, their defaults and their meaning follow the released configuration class
``HGRNBitConfig`` of ridgerchu/matmulfreellm (``mmfreelm/models/hgrn_bit/configuration_hgrn_bit.py``),
so that the ``config.json`` of a downloaded ``ridger/MMfreeLM-370M`` directory loads unchanged and a
``config.json`` written here loads in the upstream code.

Presets
-------
``tiny``
    Test size (a few thousand parameters); used by the unit tests.
``bundled``
    The model trained on this project's 2-core CPU and shipped under ``models/bundled/``.
``370m``, ``1.3b``, ``2.7b``
    The published MMfreeLM shapes (ridger/MMfreeLM-370M, -1.3B, -2.7B on the Hugging Face hub):
    24/24/32 layers, width 1024/2048/2560, vocabulary 32000 (LLaMA-2 tokenizer), ``hidden_ratio`` 4.
``13b``
    A 13B shape for cost studies. The MatMul-free paper (Zhu et al. 2024, "Scalable MatMul-free
    Language Modeling", arXiv:2406.02528) extrapolates its scaling curves to 13B but releases no
    13B configuration; this preset uses the LLaMA-13B shape (Touvron et al. 2023, arXiv:2302.13971:
    width 5120, 40 layers, vocabulary 32000) with the hgrn_bit block (hidden_ratio 4, so the GLU
    intermediate size is 13824), which gives 13.0 B parameters.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from typing import Any, Optional

MODEL_TYPE = "hgrn_bit"

#: This project's fields (not upstream); left out of ``config.json`` for an MLGRU model.
_PROJECT_FIELDS = ("token_mixer", "spike_timesteps", "spike_decay_shifts")
#: Fields written to ``config.json`` besides the dataclass fields.
_EXTRA_JSON = {"model_type": MODEL_TYPE, "architectures": ["HGRNBitForCausalLM"]}

_SUPPORTED_ATTN_MODES = ("fused_recurrent",)
#: Token mixers: the upstream MLGRU, or this project's spike-based linear attention.
TOKEN_MIXERS = ("mlgru", "spike_attention")
_SUPPORTED_ACTS = ("swish", "silu")
#: Non-linearities of the GLU gate (:attr:`MMFreeConfig.glu_activation`).
GLU_ACTIVATIONS = ("silu", "relu", "relu2")
#: This project's sparsity options and the value that means off (then they stay out of ``config.json``).
_UNSET_WHEN = {"input_sparsity": None, "glu_activation": "silu", "weight_zero_threshold": None}


@dataclass
class MMFreeConfig:
    """Hyper-parameters of an ``hgrn_bit`` model, with the upstream field names and defaults.

    Parameters
    ----------
    vocab_size : int
        Number of token ids.
    hidden_size : int
        Width of the residual stream.
    num_hidden_layers : int
        Number of MLGRU + GLU blocks.
    attn_mode : str
        Upstream kernel selector; only ``"fused_recurrent"`` exists upstream. The computation here is
        the same sequential recurrence whatever the kernel.
    num_heads : int
        Head count of the recurrence; the MLGRU is element-wise, so heads only reshape.
    expand_ratio : int
        Width of the recurrence is ``hidden_size * expand_ratio``.
    use_short_conv, conv_size, share_conv_kernel
        Upstream option of a short causal convolution before the projections. The released models
        do not use it (``use_short_conv=False``); ``True`` is rejected.
    use_lower_bound : bool
        Learned per-layer lower bound on the forget gate (``model.lower_bounds``).
    hidden_ratio : int
        GLU width factor used when ``intermediate_size`` is None.
    intermediate_size : int or None
        GLU width; None means ``256 * ceil(int(hidden_size * hidden_ratio * 2 / 3) / 256)`` as upstream.
    hidden_act : str
        ``"swish"`` (upstream always computes SiLU in the GLU).
    max_position_embeddings : int
        Nominal context length (the recurrence itself has no limit).
    rms_norm_eps : float
        Epsilon of the block RMSNorms, the final norm and the output-gate norm. The RMSNorm inside every
        BitLinear uses 1e-6 whatever this says, as the released fused kernel does.
    use_cache, fuse_cross_entropy
        Upstream run-time switches, kept for round trips.
    pad_token_id, bos_token_id, eos_token_id : int or None
        Special token ids. ``pad_token_id`` is also the embedding's ``padding_idx`` (row kept at zero).
    tie_word_embeddings : bool
        Share ``lm_head.weight`` with ``model.embeddings.weight``.
    initializer_range : float
        Standard deviation of the normal initialisation.
    token_mixer : str
        ``"mlgru"`` (upstream) or ``"spike_attention"`` (spike-based linear attention with ``num_heads``
        heads, see ``models/program/spike_attention.py``). Not an upstream field; written only when not ``"mlgru"``.
    spike_timesteps : int
        Timesteps ``T`` of the spike-coded q and v of the spike attention.
    spike_decay_shifts : list of int or None
        Per-head decay shifts of the spike attention state (decay ``1 - 2**-s``); None spreads them over
        2..8.
    input_sparsity : dict or None
        Sparsity of the BitLinear input codes per projection kind, ``{kind: {"threshold": t, "topk": k}}``
        (the number-format spec's rule, :func:`models.program.numformat.check_input_sparsity`), applied by the
        float view and exported to the integer program. Not an upstream field; written only when set.
    glu_activation : str
        The GLU's gate non-linearity: ``"silu"`` (upstream), or ``"relu"`` / ``"relu2"`` (ReLU, squared ReLU: zero
        for every negative gate, so ``down``'s inputs are sparse). Not an upstream field; written only when not SiLU.
    weight_zero_threshold : float or None
        Absmean ternarisation with a wider zero band: a weight is 0 when ``|w| <= t * mean|W|`` (None: the
        upstream ``round(w / mean|W|)``, i.e. ``t = 0.5``); more zero weights, fewer synaptic ops. Not an
        upstream field; written only when set.
    extra : dict
        Unknown fields found in a loaded ``config.json`` (for example ``transformers_version``); kept
        so that a save writes them back.
    """

    vocab_size: int = 32000
    hidden_size: int = 2048
    num_hidden_layers: int = 24
    attn_mode: str = "fused_recurrent"
    num_heads: int = 1
    expand_ratio: int = 1
    use_short_conv: bool = False
    conv_size: int = 4
    share_conv_kernel: bool = True
    use_lower_bound: bool = True
    hidden_ratio: Optional[int] = 4
    intermediate_size: Optional[int] = None
    hidden_act: str = "swish"
    max_position_embeddings: int = 2048
    rms_norm_eps: float = 1e-6
    use_cache: bool = True
    pad_token_id: Optional[int] = None
    bos_token_id: Optional[int] = 1
    eos_token_id: Optional[int] = 2
    tie_word_embeddings: bool = False
    initializer_range: float = 0.02
    fuse_cross_entropy: bool = True
    token_mixer: str = "mlgru"
    spike_timesteps: int = 4
    spike_decay_shifts: Optional[list] = None
    input_sparsity: Optional[dict] = None
    glu_activation: str = "silu"
    weight_zero_threshold: Optional[float] = None
    extra: dict = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.validate()

    # ------------------------------------------------------------------ derived sizes
    @property
    def input_dim(self) -> int:
        """Width of the MLGRU recurrence (``hidden_size * expand_ratio``)."""
        return int(self.hidden_size * self.expand_ratio)

    @property
    def mlp_intermediate_size(self) -> int:
        """GLU width, resolved as upstream ``HGRNBitMLP`` does when ``intermediate_size`` is None."""
        if self.intermediate_size is not None:
            return int(self.intermediate_size)
        ratio = 4 if self.hidden_ratio is None else self.hidden_ratio
        size = int(self.hidden_size * ratio * 2 / 3)
        return 256 * ((size + 256 - 1) // 256)

    def kind_fan_ins(self) -> dict[str, int]:
        """Fan-in of each projection kind of the input-sparsity settings."""
        d = self.hidden_size
        return {"ifg": d, "o": self.input_dim, "gate": d, "down": self.mlp_intermediate_size, "lm_head": d}

    def num_parameters(self) -> int:
        """Total parameter count (tied embeddings counted once)."""
        d, e, m, L, V = (self.hidden_size, self.input_dim, self.mlp_intermediate_size,
                         self.num_hidden_layers, self.vocab_size)
        attn = 3 * (d * e + d) + (e * d + e)              # i,f,g or q,k,v (+ norms), o (+ norm)
        attn += e if self.token_mixer == "mlgru" else 0    # MLGRU g_norm
        mlp = (d * 2 * m + d) + (m * d + m)               # gate (+norm), down (+norm)
        block = attn + mlp + 2 * d                        # attn_norm, mlp_norm
        total = V * d + L * block + d                     # embeddings, layers, final norm
        total += L * d if self.use_lower_bound else 0
        total += (0 if self.tie_word_embeddings else V * d) + d   # lm_head weight, lm_head.norm
        return total

    # ------------------------------------------------------------------ validation
    def validate(self) -> None:
        """Raise ``ValueError`` with a one-line message for the first invalid field."""
        for name in ("vocab_size", "hidden_size", "num_hidden_layers", "num_heads", "max_position_embeddings"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be a positive integer, got {v!r}")
        if isinstance(self.expand_ratio, bool) or not isinstance(self.expand_ratio, int) or self.expand_ratio < 1:
            raise ValueError(f"expand_ratio must be a positive integer, got {self.expand_ratio!r}")
        if self.hidden_ratio is not None and (isinstance(self.hidden_ratio, bool) or not isinstance(self.hidden_ratio, (int, float)) or self.hidden_ratio <= 0):
            raise ValueError(f"hidden_ratio must be positive or None, got {self.hidden_ratio!r}")
        if self.intermediate_size is not None and (isinstance(self.intermediate_size, bool) or not isinstance(self.intermediate_size, int) or self.intermediate_size < 1):
            raise ValueError(f"intermediate_size must be a positive integer or None, got {self.intermediate_size!r}")
        if self.input_dim % self.num_heads != 0:
            raise ValueError(f"hidden_size * expand_ratio ({self.input_dim}) must be divisible by num_heads ({self.num_heads})")
        if self.attn_mode not in _SUPPORTED_ATTN_MODES:
            raise ValueError(f"attn_mode must be one of {_SUPPORTED_ATTN_MODES}, got {self.attn_mode!r}")
        if self.token_mixer not in TOKEN_MIXERS:
            raise ValueError(f"token_mixer must be one of {TOKEN_MIXERS}, got {self.token_mixer!r}")
        if self.token_mixer == "spike_attention":
            from models.program.spike_attention import check_decay_shifts, check_timesteps
            check_timesteps(self.spike_timesteps)
            if self.spike_decay_shifts is not None:
                check_decay_shifts(self.spike_decay_shifts, self.num_heads)
            if self.use_lower_bound:
                raise ValueError("token_mixer='spike_attention' has no forget gate: set use_lower_bound=False")
        if self.input_sparsity is not None:
            from models.program.numformat import check_input_sparsity
            check_input_sparsity(self.input_sparsity, self.kind_fan_ins())
        if self.glu_activation not in GLU_ACTIVATIONS:
            raise ValueError(f"glu_activation must be one of {GLU_ACTIVATIONS}, got {self.glu_activation!r}")
        t = self.weight_zero_threshold
        if t is not None and (isinstance(t, bool) or not isinstance(t, (int, float)) or not 0 < t < 1.5):
            raise ValueError(f"weight_zero_threshold must be a number in (0, 1.5) (0.5 is the upstream rounding) or "
                             f"None, got {t!r}")
        if self.hidden_act not in _SUPPORTED_ACTS:
            raise ValueError(f"hidden_act must be one of {_SUPPORTED_ACTS}, got {self.hidden_act!r}")
        if self.use_lower_bound and self.expand_ratio != 1:
            raise ValueError(f"use_lower_bound=True requires expand_ratio=1 (lower_bounds has shape (layers, hidden_size)), got expand_ratio={self.expand_ratio}")
        if self.use_short_conv:
            raise ValueError("use_short_conv=True is not supported (the released hgrn_bit models use False)")
        if not isinstance(self.rms_norm_eps, (int, float)) or isinstance(self.rms_norm_eps, bool) or not self.rms_norm_eps > 0:
            raise ValueError(f"rms_norm_eps must be a positive number, got {self.rms_norm_eps!r}")
        if not isinstance(self.initializer_range, (int, float)) or not self.initializer_range > 0:
            raise ValueError(f"initializer_range must be a positive number, got {self.initializer_range!r}")
        for name in ("pad_token_id", "bos_token_id", "eos_token_id"):
            v = getattr(self, name)
            if v is None:
                continue
            if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v < self.vocab_size:
                raise ValueError(f"{name} must be None or an integer in [0, vocab_size={self.vocab_size}), got {v!r}")

    # ------------------------------------------------------------------ JSON
    def to_dict(self) -> dict[str, Any]:
        """The ``config.json`` content: upstream field names plus ``model_type``, then kept extras."""
        d: dict[str, Any] = dict(self.extra)
        for f in dataclasses.fields(self):
            if f.name in _PROJECT_FIELDS and self.token_mixer == "mlgru":
                continue      # an upstream model's config.json stays upstream
            if f.name in _UNSET_WHEN and getattr(self, f.name) == _UNSET_WHEN[f.name]:
                continue      # this project's options, left out of config.json while off
            if f.name != "extra":
                d[f.name] = getattr(self, f.name)
        d.update(_EXTRA_JSON)
        return dict(sorted(d.items()))

    def to_json(self, path: str | os.PathLike | None = None) -> str:
        """Serialise to JSON text; also write it to ``path`` when given."""
        text = json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"
        if path is not None:
            with open(path, "w", encoding="utf-8") as fh:
                fh.write(text)
        return text

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "MMFreeConfig":
        """Build from a ``config.json`` dict. Unknown fields are kept in ``extra``; a ``model_type``
        other than ``hgrn_bit`` raises ``ValueError``."""
        if not isinstance(d, dict):
            raise ValueError(f"config must be a JSON object, got {type(d).__name__}")
        mt = d.get("model_type", MODEL_TYPE)
        if mt != MODEL_TYPE:
            raise ValueError(f"unknown model_type {mt!r}: only {MODEL_TYPE!r} (MatMul-free LM) is supported")
        names = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        known = {k: v for k, v in d.items() if k in names}
        extra = {k: v for k, v in d.items() if k not in names and k not in _EXTRA_JSON}
        return cls(**known, extra=extra)

    @classmethod
    def from_json(cls, path_or_text: str | os.PathLike) -> "MMFreeConfig":
        """Load from a ``config.json`` path (or from JSON text starting with ``{``); a file that is not JSON or
        not a valid config raises ``ValueError`` naming the file."""
        s = os.fspath(path_or_text)
        if s.lstrip().startswith("{"):
            return cls.from_dict(json.loads(s))
        try:
            with open(s, encoding="utf-8") as fh:
                return cls.from_dict(json.load(fh))
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise ValueError(f"{s}: not valid JSON ({err}); restore the file from the original checkpoint") from None
        except (TypeError, ValueError) as err:
            raise ValueError(f"{s}: invalid config: {err}") from None

    @property
    def decay_shifts(self) -> list[int]:
        """The spike attention's per-head decay shifts (given or default)."""
        from models.program.spike_attention import default_decay_shifts
        return list(self.spike_decay_shifts) if self.spike_decay_shifts is not None else default_decay_shifts(self.num_heads)

    def replace(self, **changes: Any) -> "MMFreeConfig":
        """A validated copy with some fields changed."""
        return dataclasses.replace(self, **changes)


# ---------------------------------------------------------------------- presets
def _published(hidden: int, layers: int) -> dict[str, Any]:
    return dict(vocab_size=32000, hidden_size=hidden, num_hidden_layers=layers, hidden_ratio=4,
                max_position_embeddings=2048, bos_token_id=1, eos_token_id=2, pad_token_id=None)


PRESETS: dict[str, dict[str, Any]] = {
    # unit tests: a few tens of thousands of parameters
    "tiny": dict(vocab_size=512, hidden_size=32, num_hidden_layers=2, intermediate_size=64,
                 max_position_embeddings=128, bos_token_id=1, eos_token_id=2, pad_token_id=3),
    # trained on the 2-core CPU (see models/bundled/README.md for the measured throughput that sized it)
    "bundled": dict(vocab_size=4096, hidden_size=256, num_hidden_layers=5, intermediate_size=640,
                    max_position_embeddings=256, bos_token_id=1, eos_token_id=2, pad_token_id=3),
    "370m": _published(1024, 24),
    "1.3b": _published(2048, 24),
    "2.7b": _published(2560, 32),
    "13b": _published(5120, 40),
}


def preset(name: str, **overrides: Any) -> MMFreeConfig:
    """The named preset (``tiny``, ``bundled``, ``370m``, ``1.3b``, ``2.7b``, ``13b``) with overrides."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}: choose one of {', '.join(PRESETS)}")
    return MMFreeConfig(**{**PRESETS[name], **overrides})
