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


class FailsForward(RejectsGenomes):
    """A valid genome and architecture string (2 choices per position, all of them decoded), but a
    module that cannot take the space's input; no accuracy, so the search scores it by the proxy."""

    name = "fails_forward"
    accuracy = SearchSpace.accuracy

    @property
    def n_choices(self):
        return np.array([2, 2, 2])

    def build_module(self, arch, num_classes=10):
        import torch

        return torch.nn.Linear(3, num_classes)  # its input is (N, 3, 32, 32): the last dim is not 3


class NaNAccuracy(FailsForward):
    """An accuracy table with holes: NaN for the architectures starting with choice 1."""

    name = "nan_accuracy"

    def accuracy(self, archs, dataset=None):
        return np.array([np.nan if a.startswith("1") else 50.0 for a in archs])


class ShortAccuracy(FailsForward):
    """accuracy() that drops the last architecture of each batch."""

    name = "short_accuracy"

    def accuracy(self, archs, dataset=None):
        return np.full(max(len(archs) - 1, 0), 50.0)


class ComplexAccuracy(FailsForward):
    """accuracy() of complex numbers: converted to float, they lost their imaginary part with a warning."""

    name = "complex_accuracy"

    def accuracy(self, archs, dataset=None):
        return np.full(len(archs), 50.0 + 1j)


class SlashedName(FailsForward):
    """A name that cannot be part of a file name: its profiles went into a subfolder."""

    name = "has space/slash"


class EncodeOffByOne(FailsForward):
    """encode returns genome - 1: index -1 wrapped to the last feature column, and the search ran."""

    name = "off_by_one"

    def encode(self, arch):
        return super().encode(arch) - 1


class FloatChoices(FailsForward):
    name = "float_choices"

    @property
    def n_choices(self):
        return np.array([2.0, 2.0, 2.0])


class DecodesTuples(FailsForward):
    name = "decodes_tuples"

    def decode(self, genome):
        return tuple(int(g) for g in genome)


class AccuracyRaises(FailsForward):
    """An accuracy table that lacks the architectures starting with choice 1, and says so."""

    name = "accuracy_raises"

    def accuracy(self, archs, dataset=None):
        missing = [a for a in archs if a.startswith("1")]
        if missing:
            raise ValueError(f"{missing[0]} is not in my accuracy table")
        return np.full(len(archs), 50.0)


class BuildsNothing(FailsForward):
    """build_module forgets its return."""

    name = "builds_nothing"

    def build_module(self, arch, num_classes=10):
        super().build_module(arch, num_classes)


class ShipsForeignTable(FailsForward):
    """latency_table() holds an architecture the space does not have (a stale table)."""

    name = "ships_foreign_table"

    def latency_table(self):
        import pandas as pd

        return pd.DataFrame({"device": ["a", "a", "b", "b", "c", "c"], "arch_str": ["0-0-0", "x0-0-0"] * 3,
                             "latency_ms": [1.0, 2.0, 1.5, 2.5, 1.2, 2.2]})


class ShipsNoDataFrame(FailsForward):
    name = "ships_no_dataframe"

    def latency_table(self):
        return "tables/"


class NamedInInit(FailsForward):
    """Sets its name per instance; a '--' would be split at the wrong place in profile file names."""

    def __init__(self, dataset=None):
        self.name = "my--space"


class NamedByProperty(FailsForward):
    """A name given by a property is as good as a class attribute."""

    @property
    def name(self):
        return "named_by_property"


class SortsItsGenome(FailsForward):
    """Interchangeable positions: encode canonicalises to a sorted genome of booleans. Legitimate."""

    name = "sorts_its_genome"

    def encode(self, arch):
        return np.sort(super().encode(arch)).astype(bool)


class NeedsItsDataFile(FailsForward):
    """Its constructor fails the way a user's may: a data file it expects is not there."""

    def __init__(self, dataset=None):
        open("/no/such/accuracy.csv")


class AccuracyLooksUp(FailsForward):
    """An accuracy table as a dict that lacks the architectures starting with choice 1: a KeyError."""

    name = "accuracy_looks_up"

    def accuracy(self, archs, dataset=None):
        table = {a: 50.0 for a in ("0-0-0", "0-0-1", "0-1-0", "0-1-1")}
        return np.array([table[a] for a in archs])


class AccuracyAsText(FailsForward):
    """Accuracies read from a text file and never converted: "50" took part in the search as 50.0."""

    name = "accuracy_as_text"

    def accuracy(self, archs, dataset=None):
        return [str(50 + len(a)) for a in archs]


class AccuracyWithoutDataset(FailsForward):
    """accuracy() without the dataset argument the search passes."""

    name = "accuracy_without_dataset"

    def accuracy(self, archs):
        return np.full(len(archs), 50.0)


class CostFeaturesLookUp(FailsForward):
    """cost_features from a dict of per-choice costs that lacks choice 1: a KeyError in the predictor's fit."""

    name = "cost_features_look_up"

    def cost_features(self, archs):
        costs = {"0": 0.0}
        return np.array([[costs[g] for g in a.split("-")] for a in archs])


class OneArchitecture(FailsForward):
    """Two positions of one choice each: the predictor failed on it in numpy's words."""

    name = "one_architecture"

    @property
    def n_choices(self):
        return np.array([1, 1])


class ShipsWordsForLatencies(FailsForward):
    """latency_table() with a word where a latency belongs: pandas' "could not convert", naming nothing."""

    name = "ships_words"

    def latency_table(self):
        import pandas as pd

        return pd.DataFrame({"device": ["a", "a", "b", "b", "c", "c"], "arch_str": ["0-0-0", "0-0-1"] * 3,
                             "latency_ms": [1.0, 2.0, "fast", 2.5, 1.2, 2.2]})


class ListsNoArchs(FailsForward):
    """all_archs set to None as an attribute ("it has none"), where a method is expected."""

    name = "lists_no_archs"
    all_archs = None
