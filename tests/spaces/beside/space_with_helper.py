"""A user space that imports a module and a package beside it (tiny_blocks.py, tiny_lib/), which is
how a space spread over several files is written; used by tests/test_custom_space.py."""

import numpy as np
from tiny_blocks import tiny_net
from tiny_lib.widths import WIDTHS

from search_spaces import SearchSpace


class WithHelper(SearchSpace):
    name = "with_helper"

    def __init__(self, dataset=None):
        pass

    @property
    def n_choices(self):
        return np.array([2, 2, 2])

    def decode(self, genome):
        return "-".join(str(int(g)) for g in genome)

    def encode(self, arch):
        return np.array([int(v) for v in arch.split("-")])

    def build_module(self, arch, num_classes=10):
        return tiny_net([WIDTHS[g] for g in self.encode(arch)], num_classes)
