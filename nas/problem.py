"""The pymoo problem: decode genomes through the space, ask the evaluator, write F. Nothing else."""

from __future__ import annotations

import numpy as np
from pymoo.core.problem import Problem

from nas.config import UsageError
from nas.evaluator import Evaluator
from search_spaces import SearchSpace


class NasProblem(Problem):
    """Minimise (-quality, latency in ms) over integer genomes of `space`."""

    def __init__(self, space: SearchSpace, evaluator: Evaluator):
        self.space = space
        self.evaluator = evaluator
        super().__init__(n_var=space.n_vars, n_obj=2, xl=np.zeros(space.n_vars),
                         xu=np.asarray(space.n_choices) - 1, vtype=int)

    def _evaluate(self, X, out, *args, **kwargs):
        try:
            archs = [self.space.decode_within_choices(x) for x in np.asarray(X).round().astype(int)]
        except ValueError as exc:  # a user space's bug, not a pymoo error: one line, not a traceback
            raise UsageError(str(exc)) from None
        quality, latency = self.evaluator.evaluate(archs)
        out["F"] = np.column_stack([-quality, latency])
