"""Stage 1, the run store: folders keyed by config hashes (`runs`), per-step histories
(`history`), the cost ledger (`ledger`) and cached analysis tables (`cache`)."""
