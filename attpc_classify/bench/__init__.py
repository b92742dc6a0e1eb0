"""The transfer-strategy benchmark's parts; `attpc_classify.benchmark` runs them.

* `config` — `BenchConfig` and its sections (defaults = the CPU scale);
* `stages` — cached, atomically renamed stages: simulation, images, pre-trained ViTs,
  learngenes;
* `grid` — the cells (strategy x size x task x labelled-set size x seed) and one cell's
  fine-tuning and evaluation;
* `results` — ``results.csv``, rewritten atomically after every cell;
* `report` — ``results.md`` and the figures.
"""
