"""``nmllm compile``, ``nmllm simulate`` and ``nmllm activity``: map a model onto neurocores, then cost a
token on the mapping (the system model, ``sim/system/``).

``compile [MODEL]`` takes a scale (125m, 370m, 1.3b, 2.7b, 13b), a models/config preset (tiny, bundled)
or a checkpoint directory (default ``models/bundled``), and writes the mapping JSON. ``simulate`` takes
that JSON (or a model, which it compiles first) and prints the report: tokens/s, latency, time to first
token, energy per token by category, power, core utilisation. Both take ``--preset``, ``--chips N|auto``
and ``--set key=value`` overrides of any hardware field or cost (``--set weight_bits=8 --set static_per_chip=0.2``).
``activity`` measures the densities per stage with the golden model (default: ``models/bundled`` on WikiText-2
test) and writes the JSON ``simulate --activity`` takes; ``simulate CHECKPOINT`` measures them itself
(``--tokens``, ``--text``) unless given ``--activity FILE`` or ``--activity assumed``.
"""

from __future__ import annotations

import json
from pathlib import Path

__all__ = ["register"]

#: The model a command maps when none is given: the MatMul-free LM shipped in the repository.
DEFAULT_MODEL = "models/bundled"


def _add_hw_args(p) -> None:
    p.add_argument("--preset", default=None,
                   help="hardware preset: a preset name from sim/presets/ or a .yaml path (default: loihi2-estimate, "
                        "or the one a mapping was compiled for)")
    p.add_argument("--chips", default=None, help="chips available: a number, or auto (as many as the model needs)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a hardware field or a cost (for example weight_bits=8, synaptic_op_ns=0.5)")
    p.add_argument("--fill", type=float, default=1.0,
                   help="fraction of each core's synapse memory the compiler may use (default 1.0)")
    p.add_argument("--placement", choices=("snake", "random"), default="snake",
                   help="snake keeps consecutive stages adjacent (default); random measures what that buys")


def _resolve_preset(name, chips, overrides, shape=None, fill=1.0, base_overrides=None):
    from sim.system.compiler import chips_needed
    from sim.system.energy import load_preset
    from sim.system.hwconfig import parse_override

    preset = load_preset(name or "loihi2-estimate")
    changes = dict(base_overrides or {})
    for text in overrides:
        k, v = parse_override(text)
        changes[k] = v
    if changes:
        preset = preset.with_overrides(changes)
    if chips is not None:
        if str(chips).lower() == "auto":
            if shape is None:
                raise ValueError("--chips auto needs a model to size for")
            preset = preset.with_overrides({"chips": chips_needed(shape, preset.hardware.replace(chips=1), fill)})
        else:
            try:
                n = int(chips)
            except ValueError:
                raise ValueError(f"--chips must be a positive integer or auto, got {chips!r}") from None
            preset = preset.with_overrides({"chips": n})
    return preset


def _compile(args):
    from sim.system.compiler import compile_model
    from sim.system.shapes import model_shape

    shape = model_shape(args.model)
    preset = _resolve_preset(args.preset, args.chips, args.overrides, shape, args.fill)
    mapping = compile_model(shape, preset, fill=args.fill, placement=args.placement, token=args.token)
    return shape, preset, mapping


def _run_compile(args) -> int:
    if args.sanafe and _checkpoint_dir(args.model) is None:
        raise ValueError(f"--sanafe needs a checkpoint directory with weights, not {args.model!r}: model names "
                         f"(125m ... 13b) are shapes without weights")
    shape, preset, mapping = _compile(args)
    out = mapping.save(args.out)
    s = mapping.summary()
    tag = " (ESTIMATE preset)" if preset.estimate else ""
    print(f"compiled {shape.name} ({shape.params / 1e6:,.0f} M weights{', DERIVED shape' if shape.derived else ''}) "
          f"onto {s['chips_used']} of {s['chips_configured']} {preset.name} chips{tag}: {s['cores_used']} cores, "
          f"{s['synapse_memory_utilisation']:.1%} of their synapse memory, {s['neuron_utilisation']:.1%} of their neurons")
    print(f"  {s['steps_per_token']} timesteps and {s['messages_per_token']:,} messages ({s['values_per_token']:,} values) per token"
          f" in {s['message_records']:,} {preset.hardware.fanout} records")
    print(f"  mapping: {out}")
    if args.images:
        for path in write_memory_images(args.model, args.images, args.lanes):
            print(f"  memory image: {path}")
    if args.sanafe:
        from models.mmfree.checkpoint import load_checkpoint
        from models.program.integer_program import IntegerProgram
        from sim.system.sanafe import stage_inputs, write

        program = IntegerProgram.from_model(load_checkpoint(Path(args.model)))
        codes, x = stage_inputs(program, mapping.options["token"], mapping, args.sanafe_stage)
        for path in write(args.sanafe, preset, mapping, args.sanafe_stage, codes, x):
            print(f"  SANA-FE: {path}")
    return 0


def write_memory_images(checkpoint_dir, out_dir, lanes: int = 8) -> list[Path]:
    """Write ``layerNN.load.json`` per layer of a checkpoint: the ``s_axis_load`` frames (32-bit words,
    header first) that load that layer into the RTL layer top (:class:`hw.neurocore_top.NeurocoreTop`
    with ``lanes`` lanes), and ``accelerator.nmla``, the whole model's memory image for the accelerator
    (:func:`hw.accelerator.image.write_image`). Needs trained weights, so only a checkpoint directory has images."""
    from hw.neurocore_top import layer_load_frames
    from models.mmfree.checkpoint import load_checkpoint
    from models.program.integer_program import IntegerProgram

    src = Path(checkpoint_dir)
    if not (src / "config.json").is_file():
        raise ValueError(f"--images needs a checkpoint directory with weights, not {checkpoint_dir!r}: "
                         f"model names (125m ... 13b) are shapes without weights")
    program = IntegerProgram.from_model(load_checkpoint(src))
    if program.hidden_size % lanes or program.intermediate_size % lanes:
        raise ValueError(f"--lanes {lanes} must divide the hidden size {program.hidden_size} and the GLU width "
                         f"{program.intermediate_size}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for li, layer in enumerate(program.layers):
        path = out / f"layer{li:02d}.load.json"
        path.write_text(json.dumps({"layer": li, "lanes": lanes, "frames": layer_load_frames(layer, lanes)}))
        paths.append(path)
    from hw.accelerator.image import write_image

    paths.append(write_image(program, lanes, out / "accelerator.nmla"))
    return paths


def _checkpoint_dir(target) -> Path | None:
    """``target`` as a checkpoint directory (one with config.json and weights), else None."""
    p = Path(str(target))
    return p if p.is_dir() and (p / "config.json").is_file() and (p / "model.safetensors").is_file() else None


def _check_activity_args(args) -> None:
    """Refuse bad activity options before anything slow loads."""
    if isinstance(args.tokens, bool) or args.tokens < 1:
        raise ValueError(f"--tokens must be a positive integer, not {args.tokens}")
    if args.activity not in (None, "assumed") and not Path(args.activity).is_file():
        raise FileNotFoundError(f"no activity file {args.activity!r}: give a JSON written by `nmllm activity`, or "
                                f"--activity assumed")


def _load_activity(args, shape, checkpoint):
    """The activity ``simulate`` uses: a file, the stated assumption, or (default for a checkpoint) the golden
    model's per-stage counts on ``--tokens`` tokens of ``--text``."""
    from sim.system.activity import Activity, assumed_activity, measure_activity

    if args.activity == "assumed" or (args.activity is None and checkpoint is None):
        return assumed_activity(shape)
    if args.activity is None:
        from models.eval.perplexity import default_data_path

        text = Path(args.text) if args.text else default_data_path()
        if not text.is_file():
            raise FileNotFoundError(f"no text file {str(text)!r} to measure the activity of {checkpoint} on: pass "
                                    f"--text FILE, --activity FILE.json, or --activity assumed")
        return measure_activity(checkpoint, text, checkpoint / "tokenizer.json", args.tokens)
    p = Path(args.activity)
    try:
        return Activity.from_dict(json.loads(p.read_text()))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{p.name} is not JSON ({exc.msg}): give a JSON written by `nmllm activity`") from None
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{p.name}: {exc}") from None


def _run_simulate(args) -> int:
    from sim.system.compiler import Mapping
    from sim.system.shapes import ModelShape, model_shape
    from sim.system.model import SystemModel

    _check_activity_args(args)
    if args.trace and Path(args.trace).is_dir():
        raise ValueError(f"--trace {args.trace!r} is a folder: give a file name, e.g. build/trace.json")
    target = Path(args.target)
    checkpoint = None
    if target.is_file():
        mapping = Mapping.load(target)
        m = mapping.model
        shape = ModelShape(name=m["name"], hidden=m["hidden"], input_dim=m["input_dim"], intermediate=m["intermediate"],
                           layers=m["layers"], vocab=m["vocab"], source=m["source"], derived=m["derived"])
        base = dict(mapping.overrides)
        base["chips"] = mapping.hardware.chips
        preset = _resolve_preset(args.preset or mapping.preset, args.chips, args.overrides, shape, args.fill, base)
        if preset.hardware.to_dict() != mapping.hardware.to_dict():
            raise ValueError(f"--preset/--set/--chips change the hardware the mapping {target.name} was compiled for: "
                             f"recompile with `nmllm compile` or simulate the model name instead")
    else:
        args.model = args.target
        args.token = None
        checkpoint = _checkpoint_dir(args.target)
        shape, preset, mapping = _compile(args)
    activity = _load_activity(args, shape, checkpoint)
    model = SystemModel(mapping, preset, activity)
    report = model.run(prompt_tokens=args.prompt, progress=args.progress)
    print(report.text())
    if args.trace:
        from experiments.resume import write_json
        from sim.system.trace import chrome_trace

        print(f"  trace: {write_json(args.trace, chrome_trace(model, report))} (Chrome trace JSON: Perfetto, chrome://tracing)")
    if args.json:
        from experiments.provenance import provenance

        out = Path(args.json)
        out.parent.mkdir(parents=True, exist_ok=True)
        record = {**report.to_dict(), "activity": activity.to_dict(), "provenance": provenance()}
        tmp = out.with_name(out.name + ".tmp")
        tmp.write_text(json.dumps(record, indent=2) + "\n")
        tmp.replace(out)
        print(f"  report: {out}")
    return 0


def _run_activity(args) -> int:
    from experiments.provenance import provenance
    from sim.system.activity import measure_activity

    from models.eval.perplexity import default_data_path

    if args.tokens < 1:
        raise ValueError(f"--tokens must be a positive integer, not {args.tokens}")
    text = args.text or default_data_path()
    tokenizer = args.tokenizer or Path(args.checkpoint) / "tokenizer.json"
    act = measure_activity(args.checkpoint, text, tokenizer, args.tokens)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(json.dumps({**act.to_dict(), "provenance": provenance()}, indent=2) + "\n")
    tmp.replace(out)
    print(f"activity of {args.checkpoint} on {args.tokens} tokens: "
          + ", ".join(f"{k} {act.input_nonzero[k]:.3f}/{act.weight_of(k):.3f}" for k in act.input_nonzero)
          + f" (activation/weight density per kind; every stage in {out})")
    return 0


def register(subparsers) -> None:
    """Add the ``compile``, ``simulate`` and ``activity`` subcommands."""
    c = subparsers.add_parser("compile", help="map a model onto neurocores (mapping JSON)")
    c.add_argument("model", nargs="?", default=DEFAULT_MODEL,
                   help=f"125m, 370m, 1.3b, 2.7b, 13b, tiny, bundled, or a checkpoint directory (default {DEFAULT_MODEL})")
    _add_hw_args(c)
    c.add_argument("--token", type=int, default=None, help="token id whose embedding row is read (default: vocab/2)")
    c.add_argument("--out", default="build/mapping.json", help="mapping file (.json or .json.gz; default build/mapping.json)")
    c.add_argument("--images", default=None, help="also write per-layer memory images (s_axis_load frames) of a "
                                                  "checkpoint for the RTL layer top, and the accelerator's "
                                                  "memory image (accelerator.nmla), into this folder")
    c.add_argument("--lanes", type=int, default=8, help="lanes of the RTL layer top the images are for (default 8)")
    c.add_argument("--sanafe", default=None, metavar="DIR",
                   help="also write one stage of a checkpoint's mapping as a SANA-FE architecture and network "
                        "(binary spikes, the --token's inputs) into this folder, to cross-check with SANA-FE")
    c.add_argument("--sanafe-stage", default="L0.down", help="the stage --sanafe writes (o, gate, down or lm_head "
                                                              "of a layer, e.g. L0.down; default L0.down)")
    c.set_defaults(func=_run_compile)

    s = subparsers.add_parser("simulate", help="time and energy per token of a mapping (or of a model)")
    s.add_argument("target", nargs="?", default=DEFAULT_MODEL,
                   help=f"a mapping JSON from `nmllm compile`, or a model as for compile (default {DEFAULT_MODEL})")
    _add_hw_args(s)
    s.add_argument("--prompt", type=int, default=500, help="prompt length for time-to-first-token (default 500)")
    s.add_argument("--activity", default=None,
                   help="activity JSON from `nmllm activity`, or 'assumed'; default: for a checkpoint, measured per stage "
                        "by the golden model on --tokens tokens of --text; for a shape, the stated assumption")
    s.add_argument("--text", default=None,
                   help="text the default activity is measured on (default ../shared/data/wikitext-2/wiki.test.raw, or $NMLLM_DATA)")
    s.add_argument("--tokens", type=int, default=64, help="tokens the default activity is measured on (default 64)")
    s.add_argument("--json", default=None, help="also write the report as JSON here")
    s.add_argument("--progress", action="store_true", help="show a progress bar over the token's timesteps")
    s.add_argument("--trace", default=None, metavar="FILE",
                   help="also write the decode token's timesteps (time, energy by category, messages) and the prefill "
                        "as a Chrome trace JSON (open it in Perfetto)")
    s.set_defaults(func=_run_simulate)

    a = subparsers.add_parser("activity", help="measure activity densities with the golden model (JSON for simulate)",
                              description="Measure densities with the golden model and write them as JSON.")
    a.add_argument("--checkpoint", default=DEFAULT_MODEL,
                   help=f"checkpoint directory (config.json + model.safetensors; default {DEFAULT_MODEL})")
    a.add_argument("--text", default=None, help="text file (default ../shared/data/wikitext-2/wiki.test.raw, or $NMLLM_DATA)")
    a.add_argument("--tokenizer", default=None,
                   help="tokenizer.json the checkpoint was trained with (default: the one in the checkpoint directory)")
    a.add_argument("--tokens", type=int, default=256)
    a.add_argument("--out", default="build/activity.json",
                   help="activity JSON (for `nmllm simulate --activity`; default build/activity.json)")
    a.set_defaults(func=_run_activity)
