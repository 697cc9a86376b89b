"""Multicast message records (``fanout: multicast``, Loihi's core-to-core multicast): the same copies, packets
and energy as one record per (source, destination), a latency close to it, and the large shapes map."""

from __future__ import annotations

import numpy as np
import pytest

from sim.system.activity import assumed_activity
from sim.system.compiler import MAX_MESSAGES, auto_chips, compile_model
from sim.system.energy import load_preset
from sim.system.model import SystemModel
from sim.system.shapes import SCALES, model_shape


def _both(name: str):
    shape = model_shape(name)
    multi = auto_chips(shape, load_preset("loihi1"))
    uni = multi.with_overrides({"fanout": "unicast"})
    act = assumed_activity(shape)
    return [(compile_model(shape, p), p, act) for p in (multi, uni)]


def test_loihi1_multicasts_and_the_others_do_not():
    assert load_preset("loihi1").hardware.fanout == "multicast"
    assert {load_preset(n).hardware.fanout for n in ("loihi2-estimate", "crossbar", "vck190")} == {"unicast"}
    with pytest.raises(ValueError, match=r"^fanout must be one of unicast, multicast, got 'broadcast'"):
        load_preset("loihi1").with_overrides({"fanout": "broadcast"})


@pytest.mark.slow
def test_multicast_records_carry_the_same_copies_and_energy_as_unicast_records():
    """125M on loihi1: one record per source for each all-to-all; every copy, packet, hop and joule of the
    per-pair mapping is still counted, and the simulated token is within 10 % of the per-pair simulation
    (multicast copies see the links' load, not their order)."""
    (mm, pm, act), (mu, pu, _) = _both("125m")
    assert mm.summary()["messages_per_token"] == mu.summary()["messages_per_token"]
    assert mm.summary()["values_per_token"] == mu.summary()["values_per_token"]
    assert mm.summary()["message_records"] * 10 < mu.summary()["message_records"]
    a, b = SystemModel(mm, pm, act), SystemModel(mu, pu, act)
    assert a.packets.sum() == pytest.approx(b.packets.sum(), rel=1e-12)
    assert a.synops.sum() == pytest.approx(b.synops.sum(), rel=1e-12)
    for f in ("hops_ew", "hops_ns", "crossings", "local"):
        assert (a.packets * getattr(a, f)).sum() == pytest.approx((b.packets * getattr(b, f)).sum(), rel=1e-12)
    ra, rb = a.run(), b.run()
    for k, v in rb.energy_j.items():
        if k not in ("static", "total"):
            assert ra.energy_j[k] == pytest.approx(v, rel=1e-9), k
    assert ra.messages_sent == rb.messages_sent == ra.messages_received
    assert ra.token_latency_s == pytest.approx(rb.token_latency_s, rel=0.10)
    assert ra.analytic_token_latency_s == pytest.approx(rb.analytic_token_latency_s, rel=1e-9)


@pytest.mark.slow
def test_large_shapes_fit_the_message_model_on_loihi1_only_with_multicast():
    """Before multicast records 2.7B and 13B on loihi1 (binary spikes) were refused (3.7e7 and 9.5e8 records
    per token); now the record count grows with the source cores and is far below the limit."""
    from sim.system.compiler import _cuts

    for name in ("2.7b", "13b"):
        shape = SCALES[name]
        p = auto_chips(shape, load_preset("loihi1"))
        cores = sum(c.row_blocks * c.col_blocks for c in _cuts(shape, p.hardware, 1.0)[1])
        assert cores * 4 < MAX_MESSAGES
        with pytest.raises(ValueError, match=rf"^model {name} on loihi1 would send about [\d,]+ messages per token"):
            compile_model(shape, p.with_overrides({"fanout": "unicast"}))
    m = compile_model(SCALES["2.7b"], auto_chips(SCALES["2.7b"], load_preset("loihi1")))
    s = m.summary()
    assert s["message_records"] < MAX_MESSAGES < s["messages_per_token"]
    assert np.all(m.messages["ndst"] >= 1)
