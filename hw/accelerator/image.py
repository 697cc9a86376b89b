"""The accelerator's memory image: a header, the load section and the embedding table, as device memory holds it.

Layout (little-endian; every section starts on a :data:`ALIGN`-byte boundary, the widest bus word)::

    0x00  header, HEADER_WORDS 32-bit words (HEADER_FIELDS names them)
    load  load records: a descriptor word (unit << 24 | n) then n words for that unit. Units 0 .. L-1 are
          the layers: their words are NeurocoreTop load frames (hw.neurocore_top.layer_load_frames).
          Unit L is the head: frames of the same form (target << 24 | address, then words) with
          HEAD_TARGETS (lm_head weights in hw.ternary_matvec.weight_memory_image words, lm_head gain,
          final norm gain, lm_head static multiplier and shift).
    emb   the embedding, int16 Q EMBED_FRAC, one row per token, rows EMB_ALIGN-aligned (a row is
          whole bus words, so its burst starts on a word).

The hardware checks magic, version, shape fields, section sizes and alignment, and the load checksum (the
sum of the load section's 32-bit words modulo 2**32, so any one corrupted byte changes it), and raises an
error bit on a mismatch. The model hash (sha256 of the load and embedding sections, first 8 bytes) is
exposed in registers for the host to compare.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

from models.program.integer_program import PROJECTIONS, IntegerProgram

__all__ = ["MAGIC", "VERSION", "ALIGN", "HEADER_WORDS", "HEADER_FIELDS", "HEAD_TARGETS", "ImageError",
           "load_words", "emb_stride", "build_image", "write_image", "read_header", "check_image"]

#: "NMLA" as a little-endian 32-bit word.
MAGIC = int.from_bytes(b"NMLA", "little")
VERSION = 1
#: Alignment of every section and of each embedding row (64 bytes: the widest, 512-bit, bus word).
ALIGN = 64
HEADER_WORDS = 16
#: Header word index of each field.
HEADER_FIELDS = {"magic": 0, "version": 1, "hash_lo": 2, "hash_hi": 3, "hidden": 4, "glu": 5, "layers": 6,
                 "vocab": 7, "lanes": 8, "load_offset": 9, "load_words": 10, "load_checksum": 11,
                 "emb_offset": 12, "emb_stride": 13, "image_bytes": 14, "header_words": 15}
#: Targets of the head's load frames.
HEAD_TARGETS = {"weights": 0, "gain": 1, "final_gain": 2, "static": 3}


class ImageError(ValueError):
    """An image that does not fit the accelerator it is meant for."""


def _up(n: int, a: int = ALIGN) -> int:
    return -(-n // a) * a


def load_words(*, hidden: int, glu: int, layers: int, vocab: int, lanes: int) -> int:
    """Words of the load section for this shape: fixed by the shape alone, so the hardware knows it."""
    d, m = hidden, glu
    shapes = {"i_proj": (d, d), "f_proj": (d, d), "g_proj": (d, d), "o_proj": (d, d), "gate_proj": (d, 2 * m),
              "down_proj": (m, d)}
    frame = lambda n: 2 + n  # noqa: E731 - descriptor + frame header + n words
    layer = sum(frame(fo // lanes * fi) + frame(fi) for fi, fo in shapes.values()) + 4 * frame(d) + frame(12)
    head = frame(vocab // lanes * d) + 2 * frame(d) + frame(2)
    return layers * layer + head


def emb_stride(hidden: int) -> int:
    """Bytes between embedding rows (a row of int16, rounded up to :data:`ALIGN`)."""
    return _up(2 * hidden)


def _head_frames(program: IntegerProgram, lanes: int) -> list[list[int]]:
    from hw.ternary_matvec import weight_memory_image

    def frame(target: str, words) -> list[int]:
        return [HEAD_TARGETS[target] << 24] + [int(w) & 0xFFFFFFFF for w in words]

    head = program.lm_head
    return [frame("weights", weight_memory_image(head.codes, lanes)), frame("gain", head.gain),
            frame("final_gain", program.final_gain), frame("static", [head.multiplier, head.shift])]


def build_image(program: IntegerProgram, lanes: int) -> bytes:
    """The memory image of ``program`` for an accelerator with ``lanes`` lanes per ternary core."""
    from hw.neurocore_top import layer_load_frames

    if program.token_mixer != "mlgru":
        raise ImageError(f"the accelerator runs MLGRU programs only, not {program.token_mixer!r}")
    if list(program.projections) != list(PROJECTIONS):
        raise ImageError("the program's projections differ from the accelerator's")
    if program.glu_activation != "silu" or program.input_sparsity:
        raise ImageError(f"the accelerator runs SiLU GLUs on dense input codes; this program has "
                         f"glu_activation={program.glu_activation!r}, input_sparsity={program.input_sparsity!r}: "
                         f"run it on the golden model (--engine golden)")
    units = [layer_load_frames(layer, lanes) for layer in program.layers] + [_head_frames(program, lanes)]
    words = [w for u, frames in enumerate(units) for f in frames for w in [(u << 24) | len(f), *f]]
    d, v, L = program.hidden_size, program.vocab_size, len(program.layers)
    expect = load_words(hidden=d, glu=program.intermediate_size, layers=L, vocab=v, lanes=lanes)
    assert len(words) == expect, (len(words), expect)
    load = np.array(words, dtype="<u4").tobytes()
    stride = emb_stride(d)
    emb = np.zeros((v, stride // 2), dtype="<i2")
    emb[:, :d] = program.embedding
    emb = emb.tobytes()
    load_off = _up(4 * HEADER_WORDS)
    emb_off = _up(load_off + len(load))
    total = _up(emb_off + len(emb))
    digest = hashlib.sha256(load + emb).digest()
    fields = {"magic": MAGIC, "version": VERSION, "hash_lo": int.from_bytes(digest[:4], "little"),
              "hash_hi": int.from_bytes(digest[4:8], "little"), "hidden": d, "glu": program.intermediate_size,
              "layers": L, "vocab": v, "lanes": lanes, "load_offset": load_off, "load_words": len(words),
              "load_checksum": sum(words) & 0xFFFFFFFF, "emb_offset": emb_off, "emb_stride": stride,
              "image_bytes": total, "header_words": HEADER_WORDS}
    header = np.zeros(HEADER_WORDS, dtype="<u4")
    for name, value in fields.items():
        header[HEADER_FIELDS[name]] = value
    out = bytearray(total)
    out[:4 * HEADER_WORDS] = header.tobytes()
    out[load_off:load_off + len(load)] = load
    out[emb_off:emb_off + len(emb)] = emb
    return bytes(out)


def write_image(program: IntegerProgram, lanes: int, path) -> Path:
    """Write the memory image of ``program`` for ``lanes`` lanes to ``path`` (atomically); :class:`ImageError`
    (one line) if ``lanes`` does not divide the hidden size, the gate width and the vocabulary."""
    d, m, v = program.hidden_size, program.intermediate_size, program.vocab_size
    if not isinstance(lanes, int) or lanes < 1 or d % lanes or (2 * m) % lanes or v % lanes:
        raise ImageError(f"lanes {lanes} must be a positive integer dividing the hidden size {d}, the gate width "
                         f"{2 * m} and the vocabulary {v} for an accelerator image")
    image = build_image(program, lanes)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(image)
    os.replace(tmp, path)
    return path


def read_header(image: bytes) -> dict[str, int]:
    """The header fields of ``image``; :class:`ImageError` if it is too short or has the wrong magic."""
    if len(image) < 4 * HEADER_WORDS:
        raise ImageError(f"image of {len(image)} bytes is shorter than its {4 * HEADER_WORDS}-byte header")
    words = np.frombuffer(image[:4 * HEADER_WORDS], dtype="<u4")
    fields = {name: int(words[i]) for name, i in HEADER_FIELDS.items()}
    if fields["magic"] != MAGIC:
        raise ImageError(f"not an accelerator image: magic {fields['magic']:#010x}, expected {MAGIC:#010x}")
    return fields


def check_image(image: bytes, *, hidden: int, glu: int, layers: int, vocab: int, lanes: int) -> dict[str, int]:
    """Refuse (one line) an image whose header does not match this accelerator; returns the header."""
    h = read_header(image)
    if h["version"] != VERSION:
        raise ImageError(f"image format version {h['version']}, this accelerator reads version {VERSION}; "
                         f"rebuild the image with hw.accelerator.image.build_image")
    want = {"hidden": hidden, "glu": glu, "layers": layers, "vocab": vocab, "lanes": lanes,
            "load_words": load_words(hidden=hidden, glu=glu, layers=layers, vocab=vocab, lanes=lanes),
            "emb_stride": emb_stride(hidden)}
    for name, value in want.items():
        if h[name] != value:
            raise ImageError(f"image {name} is {h[name]}, the accelerator was built for {value}; "
                             f"build the image for this accelerator's configuration")
    if h["image_bytes"] != len(image):
        raise ImageError(f"image header says {h['image_bytes']} bytes, the image has {len(image)}")
    return h
