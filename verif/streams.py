"""Cycle-level drivers for Amaranth ``lib.stream`` ports (``<name>__valid``, ``__ready``, ``__payload``).

A stream beat moves on a rising clock edge when ``valid`` and ``ready`` are both high. The testbench
updates its own inputs on the falling edge, lets the design settle (``ReadOnly``), and records which
beats the coming rising edge will transfer — so the result does not depend on how a simulator orders
value-change callbacks at the rising edge (Icarus and Verilator differ there).

Random stalls: a source withholds ``valid`` with probability ``idle``, a sink withholds ``ready``
with probability ``stall``, both from one seeded ``random.Random``.
"""

from __future__ import annotations

import random
from collections import deque

__all__ = ["StreamSource", "StreamSink"]


class _StreamPort:
    """The three signals of stream ``name`` on ``dut`` and the shared random generator."""

    def __init__(self, dut, name: str, rng: random.Random):
        self.valid = getattr(dut, f"{name}__valid")
        self.ready = getattr(dut, f"{name}__ready")
        self.payload = getattr(dut, f"{name}__payload")
        self.rng = rng


class StreamSource(_StreamPort):
    """Drives ``valid``/``payload`` of a DUT input stream from a queue of integers."""

    def __init__(self, dut, name: str, rng: random.Random):
        super().__init__(dut, name, rng)
        self.queue: deque[int] = deque()
        self.idle = 0.0
        self._offered = False
        self.valid.value = 0

    def falling_edge(self) -> None:
        """Choose this cycle's beat (call on the falling edge, before ``ReadOnly``)."""
        self._offered = bool(self.queue) and self.rng.random() >= self.idle
        self.valid.value = int(self._offered)
        if self._offered:
            self.payload.value = self.queue[0]

    def settled(self) -> bool:
        """After ``ReadOnly``: True if the coming edge transfers a beat (it is then dequeued)."""
        if self._offered and int(self.ready.value):
            self.queue.popleft()
            return True
        return False


class StreamSink(_StreamPort):
    """Drives ``ready`` of a DUT output stream and collects its signed payloads."""

    def __init__(self, dut, name: str, rng: random.Random):
        super().__init__(dut, name, rng)
        self.received: list[int] = []
        self.stall = 0.0
        self._ready = False
        self.ready.value = 0

    def falling_edge(self) -> None:
        """Choose this cycle's ``ready`` (call on the falling edge, before ``ReadOnly``)."""
        self._ready = self.rng.random() >= self.stall
        self.ready.value = int(self._ready)

    def settled(self) -> bool:
        """After ``ReadOnly``: True if the coming edge transfers a beat (its payload is recorded)."""
        if self._ready and int(self.valid.value):
            self.received.append(self.payload.value.to_signed())
            return True
        return False
