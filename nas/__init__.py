"""The hardware-aware search: CLI, pymoo problem, evaluation and the results report."""
