import numpy as np
import pandas as pd
import pytest
import torch

from search_spaces import available_spaces, get_space
from search_spaces.data import data_path
from search_spaces.fbnet import BLOCKS, OPS, block_macs, layer_specs, str_to_genome


@pytest.fixture(scope="module")
def space():
    return get_space("fbnet")


@pytest.fixture(scope="module")
def table_archs():
    """The 5,000 HELP architectures with their `op_idx` digits, in HELP's index order."""
    fb = pd.read_parquet(data_path("fbnet_latency.parquet"), columns=["device", "arch_index", "arch_str", "op_idx"])
    one = fb[fb.device == fb.device.iloc[0]].sort_values("arch_index")
    return one["arch_str"].astype(str).tolist(), one["op_idx"].astype(str).tolist()


def test_registered_with_cifar100_and_no_accuracy(space):
    assert "fbnet" in available_spaces()
    assert space.name == "fbnet" and space.datasets == ("cifar100",) and space.dataset == "cifar100"
    assert space.input_shape == (3, 32, 32)
    assert space.n_vars == 22 and np.all(space.n_choices == 9)
    assert space.accuracy(["-".join(["skip"] * 22)], "cifar100") is None
    assert space.all_archs() is None


def test_encoding_matches_the_table_for_all_5000(space, table_archs):
    strs, op_idx = table_archs
    assert len(strs) == 5000
    genomes = np.stack([space.encode(a) for a in strs])
    assert ["".join(map(str, g)) for g in genomes] == op_idx       # HW-NAS-Bench's op order
    assert [space.decode(g) for g in genomes] == strs
    assert len(set(strs)) == 5000


def test_decode_encode_round_trip_on_random_genomes(space):
    rng = np.random.default_rng(0)
    genomes = rng.integers(0, 9, size=(200, 22))
    for g in genomes:
        arch = space.decode(g)
        assert np.array_equal(space.encode(arch), g)
        assert space.decode(space.encode(arch)) == arch


def test_bad_strings_and_genomes_are_rejected(space):
    with pytest.raises(ValueError):
        str_to_genome("-".join(["k3_e1"] * 21))                        # 21 layers
    with pytest.raises(ValueError):
        str_to_genome("-".join(["k3_e1"] * 21 + ["k7_e6"]))            # unknown block
    with pytest.raises(ValueError):
        space.decode([0] * 21 + [9])
    with pytest.raises(ValueError):
        get_space("fbnet", "cifar10")


def test_latency_table_is_22_devices_by_5000_archs(space, table_archs):
    lat = space.latency_table()
    assert list(lat.columns) == ["device", "arch_str", "latency_ms"]
    assert lat["device"].nunique() == 22 and lat["arch_str"].nunique() == 5000
    assert len(lat) == 22 * 5000 and not lat.duplicated(["device", "arch_str"]).any()
    assert set(lat["arch_str"]) == set(table_archs[0])
    assert (lat["latency_ms"] > 0).all()


def test_features_are_onehot_plus_stage_macs(space, table_archs):
    archs = table_archs[0][:50] + ["-".join(["skip"] * 22), "-".join(["k5_e6"] * 22)]
    f = space.features(archs)
    assert f.shape == (52, 22 * 9 + 8) and f.dtype == np.float32
    assert np.all(f[:, :198].sum(1) == 22)
    assert np.all((f[:, 198:] >= 0) & (f[:, 198:] <= 1))
    assert np.allclose(f[-1, 198:], 1.0)                                # all k5_e6 is the maximum
    assert np.array_equal(space.features(archs), f)


def _conv_macs(module, x) -> int:
    total = 0

    def hook(m, _inp, out):
        nonlocal total
        total += out[0].numel() * (m.in_channels // m.groups) * m.kernel_size[0] * m.kernel_size[1]

    handles = [m.register_forward_hook(hook) for m in module.blocks.modules() if isinstance(m, torch.nn.Conv2d)]
    with torch.no_grad():
        module(x)
    for h in handles:
        h.remove()
    return total


@pytest.mark.parametrize("arch", [
    "-".join(["skip"] * 22),
    "-".join(["k5_e6"] * 22),
    "-".join(OPS[i % 9] for i in range(22)),
    "-".join(["k3_e1_g2", "k5_e1_g2"] * 11),
])
def test_module_forward_shape_and_macs_match_the_spec(space, arch):
    module = space.build_module(arch).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        out = module(x)
        spatial = module.blocks(module.stem(x)).shape
    assert out.shape == (2, 100)
    assert spatial == (2, 352, 4, 4)                                    # CIFAR strides 1,1,2,2,1,2,1
    # the module's searchable convs do exactly the MACs the feature table assumes
    expected = sum(block_macs(BLOCKS[g], s) for g, s in zip(space.encode(arch), layer_specs(32)))
    assert _conv_macs(module, x[:1]) == expected


def test_module_residuals_and_skip_convs_follow_hw_nas_bench(space):
    module = space.build_module("-".join(["skip"] * 22))
    # a skip is a 1x1 conv exactly where the shape changes: layers 2, 6, 10, 14, 18 and 22
    convs = [i for i, b in enumerate(module.blocks, start=1) if not isinstance(b, torch.nn.Identity)]
    assert convs == [2, 6, 10, 14, 18, 22]
    module = space.build_module("-".join(["k3_e3"] * 22))
    residual = [i for i, b in enumerate(module.blocks, start=1) if b.residual]
    assert residual == [1, 3, 4, 5, 7, 8, 9, 11, 12, 13, 15, 16, 17, 19, 20, 21]
    assert module.head[0].out_channels == 1504 and module.classifier.in_features == 1504
