"""Labelled AT-TPC simulation with attpc-engine: config, channels, physics, run files.

The public entry point is `data_prep.simulate` (this package is its implementation):

    config.py    one dataclass per concern (beam, gas, detector, electronics, noise, ...)
    channels.py  what can happen in an event and which class it is labelled as
    physics.py   one seeded event: kinematics -> detector response -> threshold -> noise
    runfile.py   the labelled Spyral run-file layout and its atomic writer
    runner.py    `simulate`: plan, split into run files, parallel workers, resume
"""
