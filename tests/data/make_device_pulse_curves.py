"""Write ``tests/data/device_pulse_curves.json``: pulse-response curves of the device presets from aihwkit's own
C++ update rules.

aihwkit 1.2 ships only as a source package that needs a C++ build against torch, so the whole library is
not built here. Instead this script cuts the per-pulse update functions out of its sources
(``update_once_mult`` / ``update_once_add`` of ``rpu_linearstep_device.cpp``, ``update_once`` of
``rpu_expstep_device.cpp``), compiles them with g++ beside a driver that applies a pulse sequence to one
device, and records the weight after every pulse. Cycle-to-cycle noise is off (the Gaussian sampler returns
0) and device-to-device variation is off, so the curves are the presets' nominal responses; the per-device
scales and slopes are those of aihwkit's ``PulsedRPUDevice::populate`` / ``LinearStepRPUDevice::populate``
with mean-bound reference. A constant-step device is the linear one with zero slopes.

Run (once, by hand): ``pip download aihwkit==1.2.0 --no-deps -d build/aihwkit && tar xzf
build/aihwkit/aihwkit-1.2.0.tar.gz -C build/aihwkit && python tests/data/make_device_pulse_curves.py
build/aihwkit/aihwkit-1.2.0``.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from sim.crossbar.device_presets import PRESETS  # noqa: E402

#: The pulse sequence of every curve: up, then down, then up again; the weight is kept after every
#: ``EVERY``-th pulse.
SEQUENCE = (1200, 2400, 1200)
EVERY = 8

DRIVER = r"""
#include <cmath>
#include <cstdio>
#include <algorithm>
#define MIN(a, b) (((a) < (b)) ? (a) : (b))
#define MAX(a, b) (((a) > (b)) ? (a) : (b))
template <typename T> struct RNG { T sampleGauss() { return (T)0.0; } };
%s
int main() {
  char model[16]; int mult; double su, sd, slu, sld, lo, hi, a, b, Au, Ad, gu, gd; int n1, n2, n3;
  if (scanf("%%15s %%d %%lf %%lf %%lf %%lf %%lf %%lf %%lf %%lf %%lf %%lf %%lf %%lf %%d %%d %%d", model, &mult, &su, &sd,
            &slu, &sld, &lo, &hi, &a, &b, &Au, &Ad, &gu, &gd, &n1, &n2, &n3) != 17) return 1;
  double w = 0.0, wa = 0.0, zero = 0.0;
  int counts[3] = {n1, n2, n3}, signs[3] = {-1, 1, -1};   /* aihwkit: sign > 0 is a down pulse */
  for (int s = 0; s < 3; s++) for (int k = 0; k < counts[s]; k++) {
    int sign = signs[s];
    if (model[0] == 'e') update_once<double>(w, wa, sign, lo, hi, sd, su, a, b, Ad, Au, gd, gu, zero, zero, nullptr);
    else if (mult) update_once_mult<double>(w, wa, sign, sd, su, sld, slu, lo, hi, zero, zero, nullptr);
    else update_once_add<double>(w, wa, sign, sd, su, sld, slu, lo, hi, zero, zero, nullptr);
    printf("%%.17g\n", w);
  }
  return 0;
}
"""


def _functions(source: str, names: tuple[str, ...]) -> str:
    """The templated functions ``names`` cut out of one aihwkit C++ source."""
    out = []
    for name in names:
        m = re.search(r"template <typename T>\s*inline void " + name + r"\(.*?\n}\n", source, re.S)
        if m is None:
            raise RuntimeError(f"{name} not found in the aihwkit source; is it version 1.2?")
        out.append(m.group(0))
    return "\n".join(out)


def _params(d) -> list:
    """Driver input of preset ``d`` without variation (aihwkit's populate with gain 1, no dtod)."""
    up_bias, down_bias = (0.0, -d.up_down) if d.up_down > 0 else (d.up_down, 0.0)
    su, sd = (1.0 + up_bias) * d.dw_min, (1.0 + down_bias) * d.dw_min
    slu = -d.gamma_up * su / d.w_max if d.model == "linear" else 0.0
    sld = -d.gamma_down * sd / d.w_min if d.model == "linear" else 0.0
    mult = 1 if d.mult_noise else 0
    return [d.model, mult, su, sd, slu, sld, d.w_min, d.w_max, d.es_a, d.es_b, d.es_A_up, d.es_A_down,
            d.gamma_up, d.gamma_down, *SEQUENCE]


def main(src_root: str) -> None:
    rpu = Path(src_root) / "src" / "rpucuda"
    code = _functions((rpu / "rpu_linearstep_device.cpp").read_text(), ("update_once_mult", "update_once_add"))
    code += _functions((rpu / "rpu_expstep_device.cpp").read_text(), ("update_once",))
    curves = {}
    with tempfile.TemporaryDirectory() as tmp:
        cpp, exe = Path(tmp) / "curves.cpp", Path(tmp) / "curves"
        cpp.write_text(DRIVER % code)
        subprocess.run(["g++", "-O2", "-std=c++17", "-o", str(exe), str(cpp)], check=True)
        for name, d in PRESETS.items():
            out = subprocess.run([str(exe)], input=" ".join(map(str, _params(d))), capture_output=True, text=True,
                                 check=True).stdout
            curves[name] = [round(float(v), 12) for v in out.split()[EVERY - 1::EVERY]]
    record = {"source": "aihwkit 1.2.0 C++ update functions (rpu_linearstep_device.cpp, rpu_expstep_device.cpp), "
                        "compiled by tests/data/make_device_pulse_curves.py; no noise, no device-to-device variation",
              "sequence_up_down_up": list(SEQUENCE), "every": EVERY, "curves": curves}
    (Path(__file__).parent / "device_pulse_curves.json").write_text(json.dumps(record) + "\n")


if __name__ == "__main__":
    main(sys.argv[1])
