"""Sub-commands of ``attpc-classify``; see `attpc_classify.cli`."""
