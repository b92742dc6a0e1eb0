"""Labelled simulated AT-TPC events (proton / carbon / other) as Spyral-format run files.

Drives attpc-engine's kinematics and detector stages event by event with seeded
generators and writes ``run_0000.h5``, ``run_0001.h5``, ... that the Spyral reader
returns with their class labels. Implementation in `data_prep.sim`; physics choices in
docs/simulation.md; file layout in docs/ARCHITECTURE.md ("Simulated run files").

Examples
--------
>>> from data_prep.simulate import SimConfig, simulate
>>> summary = simulate(SimConfig(), 300, "sim_out", seed=1, workers=2)
>>> summary.classes["proton"], summary.rejected["proton"]
"""

from data_prep.sim.channels import CHANNEL_NAMES, CHANNELS, Channel, channel_weights
from data_prep.sim.config import (
    BeamConfig,
    ClassMixConfig,
    DetectorConfig,
    ElectronicsConfig,
    GasConfig,
    NoiseConfig,
    ReactionConfig,
    SimConfig,
    validate_config,
)
from data_prep.sim.nuclei import parse_isotope
from data_prep.sim.physics import NOISE_POINT_LABEL, EventGenerator, SimEvent, beam_range_mm
from data_prep.sim.runfile import EVENT_DTYPE, FORMAT, FORMAT_VERSION, read_run_info
from data_prep.sim.runner import (
    DEFAULT_EVENTS_PER_FILE,
    SimSummary,
    check_config,
    event_rng,
    simulate,
)

__all__ = [
    "CHANNELS",
    "CHANNEL_NAMES",
    "DEFAULT_EVENTS_PER_FILE",
    "EVENT_DTYPE",
    "FORMAT",
    "FORMAT_VERSION",
    "NOISE_POINT_LABEL",
    "BeamConfig",
    "Channel",
    "ClassMixConfig",
    "DetectorConfig",
    "ElectronicsConfig",
    "EventGenerator",
    "GasConfig",
    "NoiseConfig",
    "ReactionConfig",
    "SimConfig",
    "SimEvent",
    "SimSummary",
    "beam_range_mm",
    "channel_weights",
    "check_config",
    "event_rng",
    "parse_isotope",
    "read_run_info",
    "simulate",
    "validate_config",
]
