"""The interchangeable executors: integer view and golden model give the same logits; bad names refused."""

import pytest
import torch

from models.config import preset
from models.engines import ENGINES, logits_fn
from models.mmfree import MMFreeForCausalLM


def test_integer_and_golden_engines_give_identical_logits():
    torch.manual_seed(0)
    model = MMFreeForCausalLM(preset("tiny"))
    ids = torch.randint(0, 512, (2, 12), generator=torch.Generator().manual_seed(1))
    assert torch.equal(logits_fn(model, "integer")(ids), logits_fn(model, "golden")(ids))


def test_every_engine_returns_logits_of_the_right_shape():
    torch.manual_seed(0)
    model = MMFreeForCausalLM(preset("tiny"))
    ids = torch.randint(0, 512, (1, 5))
    for engine in ENGINES:
        assert logits_fn(model, engine)(ids).shape == (1, 5, 512)


def test_unknown_engine_is_refused():
    with pytest.raises(ValueError, match="unknown engine 'rtl'; choose one of float, fp32, integer, golden"):
        logits_fn(MMFreeForCausalLM(preset("tiny")), "rtl")
