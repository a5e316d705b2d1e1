"""Proof under load and faults (`make load`, `make proof`): the whole stack as processes,
a realistic mix driven through the public APIs, faults injected, and checks that nothing
was lost, doubled, sent at the wrong time or miscounted. See README, "Proof"."""
