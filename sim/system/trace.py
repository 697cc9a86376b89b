"""A simulated decode token as a Chrome trace (the JSON Perfetto and ``chrome://tracing`` open).

One complete event (``"ph": "X"``) for the token and one per timestep (``embed``, ``L3.ifg``,
``L3.ifg.reduce``, ...), laid end to end as the SimPy run timed them, each with its dynamic energy by
category, its static energy (static power x chips x the step's time), its sources and its messages; the
prefill (time to first token of the report's prompt) is a second track. Times are microseconds, energies
joules. The steps' energies add up to the report's (tested).
"""

from __future__ import annotations

from sim.system.model import Report, SystemModel

__all__ = ["chrome_trace"]


def chrome_trace(model: SystemModel, report: Report) -> dict:
    """The trace of ``report`` (returned by ``model.run()``)."""
    if len(getattr(model, "step_durations_s", ())) != len(model.steps):
        raise ValueError("the system model has not simulated a token yet: call run() before chrome_trace()")
    static_w = model.preset.static_w * model.hw.chips
    msgs = model.mapping.messages
    stages = model.mapping.stages
    events = [{"name": "process_name", "ph": "M", "pid": 1, "args": {"name": f"{report.model} on {report.chips} x {report.preset}"}},
              {"name": "thread_name", "ph": "M", "pid": 1, "tid": 1, "args": {"name": "decode token"}},
              {"name": "thread_name", "ph": "M", "pid": 1, "tid": 2, "args": {"name": "timesteps"}},
              {"name": "thread_name", "ph": "M", "pid": 1, "tid": 3, "args": {"name": "prefill"}}]
    t = 0.0
    for k, (step, dur, energy) in enumerate(zip(model.steps, model.step_durations_s, model.energy_by_step())):
        a, b = model._step_slice[k]
        events.append({"name": step["name"], "cat": stages[step["stage"]].kind, "ph": "X", "pid": 1, "tid": 2,
                       "ts": t * 1e6, "dur": dur * 1e6,
                       "args": {"phase": step["phase"], "sources": int(len(step["sources"])),
                                "messages": int(msgs["ndst"][a:b].sum()), "packets": float(model.packets[a:b].sum()),
                                "dynamic_j": energy, "static_j": static_w * dur}})
        t += dur
    events.append({"name": "decode token", "cat": "token", "ph": "X", "pid": 1, "tid": 1, "ts": 0.0,
                   "dur": report.token_latency_s * 1e6,
                   "args": {"energy_j": report.energy_j, "static_j": report.static_j, "dynamic_j": report.dynamic_j,
                            "boundary": report.energy_boundary, "activity": report.activity_source}})
    events.append({"name": f"prefill, {report.prompt_tokens}-token prompt", "cat": "prefill", "ph": "X", "pid": 1,
                   "tid": 3, "ts": t * 1e6, "dur": report.ttft_s * 1e6,
                   "args": {"pipelined_step_s": report.pipelined_step_s,
                            "energy_per_token_j": report.prefill_energy_per_token_j}})
    return {"traceEvents": events, "displayTimeUnit": "ns",
            "otherData": {"model": report.model, "preset": report.preset, "chips": report.chips,
                          "tokens_per_s": report.tokens_per_s, "energy_per_token_j": report.energy_per_token_j}}
