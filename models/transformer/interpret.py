"""Interpretability of the spike trains of a converted transformer: ambiguous vs clear sentences
(``models/transformer/interpret.py``; run by ``nmllm spike interpret``, :mod:`experiments.spike_interpret`).

Data: ``<data>/ambiguity/ambient_sentences.tsv`` (AmbiEnt sentences with an ``is_ambiguous`` label). To
keep the two classes comparable, only the ``premise`` sentences are used (ambiguous premises and clear
premises), ``n_per_class`` of each drawn with a fixed seed; every sentence runs alone (no padding).

Per site (the input of a linear layer, see :mod:`models.transformer.convert`) and over all sentences' tokens:

* **firing rate**: spikes / (neurons x tokens x timesteps);
* **entropy of spike counts**: Shannon entropy (bits) of the distribution of the signed spike count
  code one neuron emits for one token (at most ``log2(2 D + 1)`` for codes in ``[-D, D]``);
* **NMI with the class**: a sentence's *pattern* is its per-neuron mean spike count over its tokens.

  - ``nmi_neurons``: every neuron's pattern value is split at its median over sentences, the normalised
    mutual information ``I(bin; class) / sqrt(H(bin) H(class))`` is computed per neuron and the mean of
    the ``top_k`` largest is reported, next to the same statistic with the labels shuffled
    (``nmi_neurons_shuffled``: the small-sample bias floor) — a layer separates the classes when it
    clearly exceeds that floor;
  - ``nmi_kmeans``: k-means (k = 2) on the z-scored patterns, NMI between the clusters and the class
    (unsupervised: does the dominant structure of the layer's spikes follow ambiguity?);
  - ``nmi_length``: the first statistic for a control label (sentence longer than the median in tokens),
    so a layer that only tracks length is seen as such;
  - ``rate_diff``: mean firing rate of ambiguous minus clear sentences (how the separation looks).
"""

from __future__ import annotations

import csv
import math
import random
from pathlib import Path

import torch

from models.text.corpus import data_root

__all__ = ["default_path", "load_sentences", "entropy_bits", "nmi", "kmeans2", "SpikeRecorder", "interpret"]


def default_path() -> Path:
    """``<data>/ambiguity/ambient_sentences.tsv``."""
    return data_root() / "ambiguity" / "ambient_sentences.tsv"


def load_sentences(path: Path, n_per_class: int, seed: int = 0, role: str = "premise") -> list[tuple[str, int]]:
    """``n_per_class`` ambiguous (label 1) and clear (label 0) sentences of ``role``, shuffled with ``seed``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no AmbiEnt sentence file (set NMLLM_DATA)")
    with open(path, encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh, delimiter="\t"))
    rng = random.Random(seed)
    out = []
    for label, flag in ((1, "True"), (0, "False")):
        pool = [r["sentence"] for r in rows if r["is_ambiguous"] == flag and (not role or r["role"] == role)]
        if len(pool) < n_per_class:
            raise ValueError(f"only {len(pool)} {'ambiguous' if label else 'clear'} {role} sentences, asked for {n_per_class}")
        out += [(s, label) for s in rng.sample(pool, n_per_class)]
    rng.shuffle(out)
    return out


def entropy_bits(counts: torch.Tensor) -> float:
    """Shannon entropy (bits) of a histogram."""
    p = counts.double() / counts.sum()
    p = p[p > 0]
    return float(-(p * torch.log2(p)).sum())


def nmi(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Normalised mutual information ``I(a; b) / sqrt(H(a) H(b))`` of discrete labels.

    ``a`` is ``(n,)`` or ``(m, n)`` (m labelings compared with the same ``b``, shape ``(n,)``); returns a
    scalar or ``(m,)``; 0 where either entropy is 0."""
    a2 = a.reshape(-1, a.shape[-1]).long()
    b = b.long()
    n = a.shape[-1]
    av, bv = int(a2.max()) + 1, int(b.max()) + 1
    joint = torch.zeros(a2.shape[0], av, bv, dtype=torch.float64)
    idx = a2 * bv + b[None, :]
    joint.view(a2.shape[0], -1).scatter_add_(1, idx, torch.ones_like(idx, dtype=torch.float64))
    joint /= n
    pa, pb = joint.sum(2), joint.sum(1)

    def H(p):
        return -(torch.where(p > 0, p * torch.log(p), torch.zeros_like(p))).sum(-1)

    denom = pa[:, :, None] * pb[:, None, :]
    mi = torch.where(joint > 0, joint * torch.log(joint / torch.where(denom > 0, denom, torch.ones_like(denom))),
                     torch.zeros_like(joint)).sum((1, 2))
    ha, hb = H(pa), H(pb)
    out = torch.where((ha > 0) & (hb > 0), mi / torch.sqrt(ha * hb).clamp(min=1e-300), torch.zeros_like(mi))
    return out.reshape(a.shape[:-1]) if a.dim() > 1 else out[0]


def kmeans2(x: torch.Tensor, iters: int = 50, seed: int = 0) -> torch.Tensor:
    """k-means with k = 2 (farthest-point init from a seeded start), returns labels ``(n,)``."""
    g = torch.Generator().manual_seed(seed)
    c0 = x[int(torch.randint(0, x.shape[0], (1,), generator=g))]
    c1 = x[int(torch.argmax((x - c0).square().sum(1)))]
    cent = torch.stack([c0, c1])
    lab = torch.zeros(x.shape[0], dtype=torch.long)
    for _ in range(iters):
        new = torch.cdist(x, cent).argmin(1)
        if torch.equal(new, lab) and _ > 0:
            break
        lab = new
        for k in range(2):
            if int((lab == k).sum()):
                cent[k] = x[lab == k].mean(0)
    return lab


class SpikeRecorder:
    """Collects, per site, every sentence's per-neuron mean spike count and the histogram of signed codes."""

    def __init__(self, sm):
        self.sm = sm
        self.patterns: dict[str, list[torch.Tensor]] = {s: [] for s in sm.sites}
        self.hist: dict[str, torch.Tensor] = {}
        self.spikes: dict[str, float] = {s: 0.0 for s in sm.sites}
        self.cells: dict[str, int] = {s: 0 for s in sm.sites}

    def __call__(self, site: str, spikes: torch.Tensor, codes: torch.Tensor) -> None:
        K = spikes.shape[-1]
        self.patterns[site].append(spikes.reshape(-1, K).float().mean(0))
        D = self.sm.sites[site].coding.max_code
        h = torch.bincount((codes.reshape(-1).long() + D), minlength=2 * D + 1)
        self.hist[site] = self.hist[site] + h if site in self.hist else h
        self.spikes[site] += float(spikes.sum())
        self.cells[site] += spikes.numel()

    def __enter__(self):
        for st in self.sm.sites.values():
            st.recorders.append(self)
        return self

    def __exit__(self, *exc):
        for st in self.sm.sites.values():
            st.recorders.remove(self)


@torch.no_grad()
def interpret(sm, tokenizer, sentences: list[tuple[str, int]], top_k: int = 16, seed: int = 0,
              progress: bool = False) -> dict:
    """Per-site firing rate, entropy and NMI (see the module docstring)."""
    backend = tokenizer.backend_tokenizer
    labels = torch.tensor([lab for _, lab in sentences])
    lengths = []
    fn = sm.logits_fn()
    it = sentences
    if progress:
        from tqdm import tqdm
        it = tqdm(sentences, desc="interpret", unit="sentence")
    with SpikeRecorder(sm) as rec:
        for s, _ in it:
            ids = backend.encode(s, add_special_tokens=False).ids
            lengths.append(len(ids))
            fn(torch.tensor([ids]))
    lengths_t = torch.tensor(lengths)
    long_label = (lengths_t > lengths_t.float().median()).long()
    g = torch.Generator().manual_seed(seed)
    shuffled = labels[torch.randperm(labels.numel(), generator=g)]
    out = {}
    for site, st in sm.sites.items():
        P = torch.stack(rec.patterns[site])                         # (sentences, K)
        med = P.median(0).values
        bins = (P > med[None, :]).long().T                          # (K, sentences)
        k = min(top_k, bins.shape[0])
        per_neuron = nmi(bins, labels)
        Z = (P - P.mean(0)) / P.std(0).clamp(min=1e-6)
        T = st.coding.timesteps
        amb, clr = labels == 1, labels == 0
        out[site] = {
            "firing_rate": rec.spikes[site] / (rec.cells[site] * T),
            "entropy_bits": entropy_bits(rec.hist[site]),
            "max_entropy_bits": math.log2(2 * st.coding.max_code + 1),
            "nmi_neurons": float(per_neuron.topk(k).values.mean()),
            "nmi_neurons_shuffled": float(nmi(bins, shuffled).topk(k).values.mean()),
            "nmi_length": float(nmi(bins, long_label).topk(k).values.mean()),
            "nmi_kmeans": float(nmi(kmeans2(Z, seed=seed), labels)),
            "top_neurons": per_neuron.topk(min(5, k)).indices.tolist(),
            "rate_diff": float(P[amb].mean() - P[clr].mean()) / T,
        }
    return {"sentences": len(sentences), "ambiguous": int(labels.sum()), "clear": int((1 - labels).sum()),
            "mean_tokens_ambiguous": float(lengths_t[labels == 1].float().mean()),
            "mean_tokens_clear": float(lengths_t[labels == 0].float().mean()), "sites": out}
