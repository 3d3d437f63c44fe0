"""Spaces that are wrong on purpose, for the bad-input tests of user search spaces."""

import numpy as np

from search_spaces import SearchSpace


class NotASpace:
    pass


class Incomplete(SearchSpace):
    name = "incomplete"

    @property
    def n_choices(self):
        return np.array([2, 2])


class RejectsGenomes(SearchSpace):
    """Claims 3 choices per position but rejects the genomes that use choice 2."""

    name = "rejects"

    def __init__(self, dataset=None):
        pass

    @property
    def n_choices(self):
        return np.array([3, 3, 3])

    def decode(self, genome):
        if any(int(g) == 2 for g in genome):
            raise ValueError("choice 2 is not implemented")
        return "-".join(str(int(g)) for g in genome)

    def encode(self, arch):
        return np.array([int(v) for v in arch.split("-")])

    def accuracy(self, archs, dataset=None):
        return np.array([50.0 + sum(self.encode(a)) for a in archs])

    def build_module(self, arch, num_classes=10):
        raise NotImplementedError
