"""Federated learning across labs that keep their events: GENE-FL and FedAvg on Flower.

* `attpc_classify.federated.config` — `FedConfig` (configs/federated/*.yaml);
* `attpc_classify.federated.local` — a lab's data split, local training, scoring;
* `attpc_classify.federated.apps` — Flower `ClientApp`, `ServerApp`, GENE-FL strategy,
  per-round state;
* `attpc_classify.federated.run` — ``attpc-classify federate``: data, simulation, new lab;
* `attpc_classify.federated.report` — ``report.md``, ``summary.json``, figures.

The GENE-FL formulas are `learngene.genefl`; docs/federated.md says what follows the
paper and what is ours.
"""
