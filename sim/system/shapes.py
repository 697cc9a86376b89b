"""Per-layer shapes and weight counts of MatMul-free LM configurations, from the architecture.

Each block of an ``hgrn_bit`` model holds (``d`` = hidden, ``e`` = d x expand_ratio, ``m`` = GLU width):
``attn.{i,f,g}_proj`` d→e, ``attn.o_proj`` e→d, ``mlp.gate_proj`` d→2m (``[g, u]``), ``mlp.down_proj``
m→d, all ternary; plus the int16 embedding (vocab x d) and the ternary ``lm_head`` d→vocab.

Scales (:data:`SCALES`), with where each shape comes from:

=======  ======  =====  =====  ======  ==========================================================
name     layers  d      m      vocab   source
=======  ======  =====  =====  ======  ==========================================================
125m     12      768    2048   32000   DERIVED: GPT-3 Small width/depth (Brown et al. 2020, Table
                                       2.1) with the hgrn_bit block; no released MMfreeLM-125M
370m     24      1024   2816   32000   ridger/MMfreeLM-370M (models/mmfree/config.py preset ``370m``)
1.3b     24      2048   5632   32000   ridger/MMfreeLM-1.3B (preset ``1.3b``)
2.7b     32      2560   6912   32000   ridger/MMfreeLM-2.7B (preset ``2.7b``)
13b      40      5120   13824  32000   DERIVED: LLaMA-13B width/depth (Touvron et al. 2023) with
                                       the hgrn_bit block (preset ``13b``); no released 13B
=======  ======  =====  =====  ======  ==========================================================

The GLU width ``m`` is what upstream ``HGRNBitMLP`` computes from ``hidden_ratio = 4`` when the
released configs leave ``intermediate_size`` null: ``256 * ceil(int(8d/3) / 256)``
(:attr:`models.mmfree.config.MMFreeConfig.mlp_intermediate_size`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from models.mmfree.config import MMFreeConfig, preset as config_preset

__all__ = ["Projection", "ModelShape", "SCALES", "model_shape"]


@dataclass(frozen=True)
class Projection:
    """One weight tensor: checkpoint key, ``fan_in`` x ``fan_out``, ternary or an embedding table."""

    key: str
    fan_in: int
    fan_out: int
    ternary: bool = True

    @property
    def count(self) -> int:
        return self.fan_in * self.fan_out


@dataclass(frozen=True)
class ModelShape:
    """Sizes of one MatMul-free LM; ``derived`` is True when no released model has this shape."""

    name: str
    hidden: int
    input_dim: int
    intermediate: int
    layers: int
    vocab: int
    source: str
    derived: bool
    token_mixer: str = "mlgru"      # or "spike_attention" (q/k/v projections, per-head KV state)
    heads: int = 1

    @property
    def head_dim(self) -> int:
        return self.input_dim // self.heads

    @classmethod
    def from_config(cls, name: str, cfg: MMFreeConfig, source: str, derived: bool) -> "ModelShape":
        return cls(name=name, token_mixer=cfg.token_mixer, heads=cfg.num_heads if cfg.token_mixer != "mlgru" else 1,
                   hidden=cfg.hidden_size, input_dim=cfg.input_dim, intermediate=cfg.mlp_intermediate_size,
                   layers=cfg.num_hidden_layers, vocab=cfg.vocab_size, source=source, derived=derived)

    def projections(self) -> list[Projection]:
        """Every weight tensor in checkpoint order (embedding first, ``lm_head`` last)."""
        d, e, m = self.hidden, self.input_dim, self.intermediate
        out = [Projection("model.embeddings.weight", self.vocab, d, ternary=False)]
        for li in range(self.layers):
            p = f"model.layers.{li}"
            out += [Projection(f"{p}.attn.{n}_proj.weight", d, e) for n in self.mixer_inputs]
            out += [Projection(f"{p}.attn.o_proj.weight", e, d),
                    Projection(f"{p}.mlp.gate_proj.weight", d, 2 * m),
                    Projection(f"{p}.mlp.down_proj.weight", m, d)]
        out.append(Projection("lm_head.weight", d, self.vocab))
        return out

    @property
    def mixer_inputs(self) -> tuple[str, str, str]:
        """The three input projections of the token mixer: ``i f g`` (MLGRU) or ``q k v`` (spike attention)."""
        return ("q", "k", "v") if self.token_mixer == "spike_attention" else ("i", "f", "g")

    @property
    def ternary_weights(self) -> int:
        return sum(p.count for p in self.projections() if p.ternary)

    @property
    def embedding_entries(self) -> int:
        return self.vocab * self.hidden

    @property
    def params(self) -> int:
        """Weights of the matrices (norm gains and lower bounds, < 0.1 %, left out)."""
        return self.ternary_weights + self.embedding_entries

    def weight_bytes(self, weight_bits: int = 2, embed_bits: int = 16) -> int:
        """Bytes to hold every tensor at the given widths."""
        return (self.ternary_weights * weight_bits + self.embedding_entries * embed_bits + 7) // 8

    def to_dict(self) -> dict:
        return {"name": self.name, "hidden": self.hidden, "input_dim": self.input_dim,
                "intermediate": self.intermediate, "layers": self.layers, "vocab": self.vocab,
                "params": self.params, "source": self.source, "derived": self.derived,
                "token_mixer": self.token_mixer, "heads": self.heads}


def _scales() -> dict[str, ModelShape]:
    small = MMFreeConfig(vocab_size=32000, hidden_size=768, num_hidden_layers=12, hidden_ratio=4)
    return {
        "125m": ModelShape.from_config("125m", small, "DERIVED: GPT-3 Small width 768 / 12 layers (Brown et al. 2020, "
                                       "Table 2.1) with the hgrn_bit block, vocab 32000; no released MMfreeLM-125M", True),
        "370m": ModelShape.from_config("370m", config_preset("370m"), "ridger/MMfreeLM-370M: 24 layers, width 1024, "
                                       "vocab 32000, hidden_ratio 4 (GLU 2816 as upstream HGRNBitMLP computes)", False),
        "1.3b": ModelShape.from_config("1.3b", config_preset("1.3b"), "ridger/MMfreeLM-1.3B: 24 layers, width 2048, "
                                       "vocab 32000, hidden_ratio 4 (GLU 5632)", False),
        "2.7b": ModelShape.from_config("2.7b", config_preset("2.7b"), "ridger/MMfreeLM-2.7B: 32 layers, width 2560, "
                                       "vocab 32000, hidden_ratio 4 (GLU 6912)", False),
        "13b": ModelShape.from_config("13b", config_preset("13b"), "DERIVED: LLaMA-13B width 5120 / 40 layers "
                                      "(Touvron et al. 2023) with the hgrn_bit block (GLU 13824); no released 13B", True),
    }


#: The scaling-study shapes, smallest first.
SCALES: dict[str, ModelShape] = _scales()


def model_shape(name_or_dir: str | os.PathLike) -> ModelShape:
    """A scale name (``125m`` .. ``13b``), a ``models.mmfree.config`` preset (``tiny``, ``bundled``), or a
    checkpoint directory holding ``config.json``."""
    key = str(name_or_dir)
    if key.lower() in SCALES:
        return SCALES[key.lower()]
    path = Path(key)
    if path.is_dir():
        cfg_path = path / "config.json"
        if not cfg_path.is_file():
            raise FileNotFoundError(f"{path} has no config.json: give a checkpoint directory or a model name "
                                    f"({', '.join(SCALES)}, tiny, bundled)")
        cfg = MMFreeConfig.from_json(cfg_path)
        return ModelShape.from_config(path.name or key, cfg, f"checkpoint {cfg_path}", False)
    try:
        cfg = config_preset(key.lower())
    except ValueError:
        raise ValueError(f"unknown model {key!r}: give one of {', '.join(SCALES)}, tiny, bundled, or a checkpoint directory") from None
    return ModelShape.from_config(key.lower(), cfg, f"models/mmfree/config.py preset {key.lower()!r}", False)
