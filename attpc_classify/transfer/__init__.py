"""Transfer learning in one place: learngene training and the transfer-strategy benchmark.

* `learngene` — `train_learngene`: a trained teacher run -> a learngene file (TLEG, LeTs,
  inheritance, weight selection); ``attpc-classify learngene`` and the benchmark call it;
* `benchmark` — `run_benchmark`: the whole benchmark protocol, resumable;
* `config` — `BenchConfig` and its sections (defaults = the CPU scale);
* `stages` — cached, atomically renamed stages: simulation, images, pre-trained ViTs,
  learngenes;
* `grid` — the cells (strategy x size x task x labelled-set size x seed) and one cell's
  fine-tuning and evaluation;
* `results` — ``results.csv``, rewritten atomically after every cell;
* `report` — ``results.md`` and the figures.

The commands (`attpc_classify.commands.benchmark`, `.learngene`) only parse arguments and
draw progress bars; nothing here imports them. The top-level ``benchmarks/`` folder is
unrelated: scripts that print speed and memory figures.
"""
