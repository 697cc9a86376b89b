"""Device presets for in-situ learning: three published devices and an ideal symmetric control.

The update-step parameters are the fits aihwkit 1.2 publishes (``aihwkit.simulator.presets.devices``) of
the cited measurements, copied with their names:

- ``reram_es``: RRAM, exponential step with strong up/down asymmetry (``ReRamESPresetDevice``; Gong et
  al., Nat. Commun. 9, 2102, 2018);
- ``reram_sb``: the same RRAM, soft bounds, its symmetry point shifted by a reference device
  (``ReRamSBPresetDevice``; Gong et al. 2018);
- ``ecram``: metal-oxide ECRAM, linear step with unequal up/down saturation (``EcRamPresetDevice``; Tang
  et al., IEDM 2018);
- ``ideal``: constant symmetric steps of the RPU device specification (Gokmen & Vlasov, Front. Neurosci.
  10:333, 2016: 1,000 states over the range), no variation or noise: the control.

The pulse's electrical cost is not part of those fits. Every preset uses the RPU design target of Gokmen &
Vlasov 2016 (1 V pulses of 1 ns on a 24 MOhm device: ``V^2 t / R`` = 0.042 fJ per pulse), so the energy
of two presets differs by their pulse counts; ``endurance`` is an assumed 1e9 pulses for every preset
(none of the fits states one). Both are assumptions, named so in every record that uses them.
"""

from __future__ import annotations

from sim.crossbar.pulsed_device import PulsedDevice

__all__ = ["PRESETS", "PULSE", "preset"]

#: The electrical pulse every preset is priced with (assumed: the RPU design target).
PULSE = {"voltage_v": 1.0, "width_s": 1e-9, "resistance_ohm": 24e6, "endurance": 1e9,
         "source": "Gokmen & Vlasov, Front. Neurosci. 10:333 (2016), RPU device specification (assumed for "
                   "every preset); endurance assumed"}

_COST = {"pulse_energy_j": PULSE["voltage_v"] ** 2 * PULSE["width_s"] / PULSE["resistance_ohm"],
         "pulse_time_s": PULSE["width_s"], "endurance": PULSE["endurance"]}

PRESETS = {
    "ideal": PulsedDevice(name="ideal", model="constant", dw_min=0.002, **_COST,
                          source="Gokmen & Vlasov 2016 (RPU specification, without its variations)"),
    "reram_sb": PulsedDevice(name="reram_sb", model="linear", dw_min=0.002, w_min=-0.75, w_max=1.25,
                             gamma_up=1.0, gamma_down=1.0, mult_noise=False, dw_min_dtod=0.3,
                             up_down_dtod=0.01, w_max_dtod=0.3 / 1.25, w_min_dtod=0.3 / 0.75,
                             dw_min_std=3.75, write_noise_std=56.0, **_COST,
                             source="Gong et al., Nat. Commun. 9:2102 (2018), aihwkit ReRamSBPresetDevice"),
    "reram_es": PulsedDevice(name="reram_es", model="exp", dw_min=0.00135, up_down=0.259359, es_a=-0.5, es_b=-0.5,
                             gamma_up=5.0, gamma_down=5.0, es_A_up=-1.18445, es_A_down=-0.081404,
                             dw_min_dtod=0.2, up_down_dtod=0.05, w_max_dtod=0.3, w_min_dtod=0.3, dw_min_std=5.0,
                             write_noise_std=75.0, **_COST,
                             source="Gong et al., Nat. Commun. 9:2102 (2018), aihwkit ReRamESPresetDevice"),
    "ecram": PulsedDevice(name="ecram", model="linear", dw_min=0.002, w_min=-0.8276, w_max=1.1724,
                          gamma_up=0.1153, gamma_down=0.5085, dw_min_dtod=0.1, up_down_dtod=0.01, w_max_dtod=0.05, w_min_dtod=0.05,
                          dw_min_std=0.3, **_COST,
                          source="Tang et al., IEDM 2018, aihwkit EcRamPresetDevice"),
}


def preset(name: str) -> PulsedDevice:
    """The preset ``name``; an unknown name is refused in one line listing the presets."""
    if name not in PRESETS:
        raise ValueError(f"unknown device preset {name!r}: choose one of {', '.join(PRESETS)}")
    return PRESETS[name]
