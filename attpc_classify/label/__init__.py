"""Labelling real events by hand: a local web page, most useful events first.

`store` (the labels CSV), `ranking` (the showing order), `session` (events, model
probabilities, queue) and `server` (the page). The command is ``attpc-classify label``.
"""
