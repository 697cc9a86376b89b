"""`nmllm demo` ends in PASS only when every check passed; a failed check prints FAIL naming it and exits 1."""


import pytest

from models.program.golden import GoldenModel
from nmllm.cli import main


def test_too_few_tokens_are_refused_before_anything_loads(monkeypatch, capsys):
    import nmllm.demo as demo

    def loads(*args, **kwargs):
        raise AssertionError("the demo started loading before it checked --tokens")
    for name in ("_model_section", "_rtl_thread", "_cost_section"):
        monkeypatch.setattr(demo, name, loads)
    assert main(["demo", "--tokens", "-5"]) == 2
    assert capsys.readouterr().err == ("nmllm demo: error: --tokens must be at least 16 "
                                       "(the quality check's smallest sample), got -5\n")


@pytest.mark.cocotb
@pytest.mark.slow
def test_golden_model_disagreeing_with_the_integer_view_fails_the_demo(monkeypatch, capsys):
    run = GoldenModel.run

    def one_logit_off(self, tokens):
        logits, events = run(self, tokens)
        logits[0, 0] += 1
        return logits, events

    monkeypatch.setattr(GoldenModel, "run", one_logit_off)
    assert main(["demo", "--tokens", "16"]) == 1
    out = capsys.readouterr().out
    assert "golden     Numba event-driven golden model vs torch integer view on 16 tokens: LOGITS DIFFER" in out
    assert "bit-exact, every output word" in out  # the other checks ran and passed
    assert [line for line in out.splitlines() if line.startswith("result")] == [
        "result     FAIL golden vs integer view: 1 of 65,536 logits differ"]
