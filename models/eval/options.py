"""Checks of the evaluation options (``--window``, ``--max-tokens`` ...) that commands run before they load a
model, so a bad value fails in a second instead of after minutes of loading. Pure Python: no torch."""

from __future__ import annotations

from numbers import Integral

__all__ = ["check_options"]

#: option -> smallest allowed value; the option is an integer, None means "not set".
_MINIMUM = {"window": 1, "stride": 1, "max_tokens": 1, "batch_size": 1, "threads": 1, "calib_tokens": 1,
            "n_articles": 1, "max_new_tokens": 1, "max_article_tokens": 0, "rouge_articles": 0}


def check_options(**options) -> None:
    """Raise ``ValueError`` naming the first bad option among ``options`` (for example ``**vars(args)`` of a
    command): each known one must be an integer at its minimum or above, and ``stride`` must not exceed
    ``window``. Unknown names and None values are ignored."""
    for name, low in _MINIMUM.items():
        v = options.get(name)
        if v is not None and (isinstance(v, bool) or not isinstance(v, Integral) or v < low):
            kind = "a positive" if low else "a non-negative"
            raise ValueError(f"--{name.replace('_', '-')} must be {kind} integer, not {v!r}")
    window, stride = options.get("window"), options.get("stride")
    if window is not None and stride is not None and stride > window:
        raise ValueError(f"--stride ({stride}) must not exceed --window ({window}), or tokens would be skipped: "
                         f"lower --stride or raise --window")
