"""The event channels and the class each one is labelled as.

A channel is what physically happened in an event; its class is what a person labelling
the event would call it (docs/simulation.md says why each channel is in its class). The
names assume the e15503b beam (46Ar); the kinematics follow whatever beam is configured.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from data_prep.events import CLASS_NAMES


@dataclass(frozen=True)
class Channel:
    """One way an event can come about.

    Attributes
    ----------
    name
        Stored in the event table and as the ``channel`` attribute of ``cloud_<n>``.
    label
        Class id into `data_prep.events.CLASS_NAMES`.
    target
        Target isotope in the gas (``None`` for noise-only and pile-up events).
    ejectile
        Light outgoing isotope whose CM angle is sampled (``None`` when no reaction).
    description
        One line for documentation and summaries.
    """

    name: str
    label: int
    target: str | None
    ejectile: str | None
    description: str

    @property
    def other(self) -> bool:
        """Channels of class "other" have their own weight in `ClassMixConfig`."""
        return self.label == CLASS_NAMES.index("other")

    @property
    def proton(self) -> bool:
        return self.label == CLASS_NAMES.index("proton")

    @property
    def is_reaction(self) -> bool:
        return self.target is not None


CHANNELS: dict[str, Channel] = {
    c.name: c
    for c in (
        Channel("p_elastic", 0, "1H", "1H", "1H(46Ar,p)46Ar elastic scattering"),
        Channel("c12_elastic", 1, "12C", "12C", "12C(46Ar,12C)46Ar elastic scattering"),
        Channel("noise", 2, None, None, "noise only: random pad hits, no reaction"),
        Channel("alpha_43cl", 2, "1H", "4He", "1H(46Ar,alpha)43Cl, Q = -0.75 MeV"),
        Channel("alpha_54ti", 2, "12C", "4He", "12C(46Ar,alpha)54Ti*, fusion-evaporation"),
        Channel("pileup", 2, None, None, "two reactions in one readout window"),
        Channel("p_inelastic", 0, "1H", "1H", "1H(46Ar,p')46Ar(2+, 1.55 MeV) inelastic"),
        Channel("fusion_evap", 2, "12C", None, "12C(46Ar,xn yp zα): fusion-evaporation"),
    )
}

#: Channel order used for ids in the plan (stable: only ever append).
CHANNEL_NAMES: tuple[str, ...] = tuple(CHANNELS)
#: Reactions that can be one half of a pile-up event.
PILEUP_CAPABLE: tuple[str, ...] = tuple(c.name for c in CHANNELS.values() if c.is_reaction)
#: Class weight key in `ClassMixConfig` -> the channel that makes that class on its own.
CLASS_CHANNEL = {"proton": "p_elastic", "carbon": "c12_elastic"}


def channel_weights(mix) -> dict[str, float]:
    """Absolute weight of every channel: class weight x share of the channel in its class.

    Parameters
    ----------
    mix
        A `data_prep.sim.config.ClassMixConfig`.
    """
    others = [c for c in CHANNELS.values() if c.other]
    other_total = sum(float(getattr(mix, c.name)) for c in others)
    weights = {name: float(getattr(mix, cls)) for cls, name in CLASS_CHANNEL.items()}
    # the proton class: elastic and (p,p') inelastic by the share mix.p_inelastic
    weights["p_inelastic"] = float(mix.proton) * float(mix.p_inelastic)
    weights["p_elastic"] -= weights["p_inelastic"]
    for c in others:
        share = float(getattr(mix, c.name)) / other_total if other_total > 0 else 0.0
        weights[c.name] = float(mix.other) * share
    return {name: weights[name] for name in CHANNEL_NAMES}


def plan_channels(mix, n_events: int, rng: np.random.Generator) -> np.ndarray:
    """Channel id of every event: exact counts from the weights, in a random order.

    Counts use largest remainders, so 12 events at 1 : 1 : 1 give exactly 4 per class,
    and a tiny run still holds every class with a positive weight where it can.

    Returns
    -------
    numpy.ndarray
        ``(n_events,)`` int into `CHANNEL_NAMES`.
    """
    w = np.array(list(channel_weights(mix).values()), dtype=float)
    exact = w / w.sum() * n_events
    counts = np.floor(exact).astype(np.int64)
    remainder = exact - counts
    # ties broken by channel order, so the plan is a pure function of (mix, n, seed)
    order = np.lexsort((np.arange(len(w)), -remainder))
    counts[order[: n_events - counts.sum()]] += 1
    plan = np.repeat(np.arange(len(w)), counts)
    return rng.permutation(plan)
