import numpy as np
import pandas as pd
import pytest
import torch

from search_spaces import get_space
from search_spaces.data import data_path
from search_spaces.nasbench201 import str_to_genome


@pytest.fixture(scope="module")
def space():
    return get_space("nasbench201")


def test_index_and_string_agree_with_the_latency_table_for_all_15625(space):
    lat = pd.read_parquet(data_path("nasbench201_latency.parquet"), columns=["device", "arch_index", "arch_str"])
    one = lat[lat.device == "gold_6226"].sort_values("arch_index")
    table_strs = one["arch_str"].astype(str).tolist()
    assert one["arch_index"].tolist() == list(range(15625))
    assert space.all_archs() == table_strs
    for i in (0, 1, 6111, 15624):
        assert space.index_of(table_strs[i]) == i
        assert space.arch_of(i) == table_strs[i]
    # genome round trip for every architecture, and the 15,625 genomes are all distinct
    genomes = np.stack([space.encode(a) for a in table_strs])
    assert len({tuple(g) for g in genomes}) == 15625
    assert [space.decode(g) for g in genomes] == table_strs


def test_index_0_is_the_documented_string(space):
    assert space.arch_of(0) == ("|avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+"
                                "|nor_conv_1x1~0|skip_connect~1|skip_connect~2|")


def test_bad_strings_and_genomes_are_rejected(space):
    with pytest.raises(ValueError):
        str_to_genome("|conv~0|+|none~0|none~1|+|none~0|none~1|none~2|")
    with pytest.raises(ValueError):
        space.decode([0, 0, 0, 0, 0, 5])
    with pytest.raises(ValueError):
        space.arch_of(15625)


def test_accuracy_matches_published_optima(space):
    # NAS-Bench-201 paper: best CIFAR-10 94.37 (index 6111), CIFAR-100 73.51 (index 9930).
    assert space.accuracy([space.arch_of(6111)], "cifar10")[0] == pytest.approx(94.37, abs=0.01)
    assert space.accuracy([space.arch_of(9930)], "cifar100")[0] == pytest.approx(73.51, abs=0.01)


def test_features_are_one_hot_per_edge(space):
    f = space.features([space.arch_of(0), space.arch_of(1)])
    assert f.shape == (2, 30)
    assert np.all(f.reshape(2, 6, 5).sum(axis=2) == 1)


@pytest.mark.parametrize("index", [0, 6111])
def test_module_forward_pass(space, index):
    torch.manual_seed(0)
    net = space.build_module(space.arch_of(index)).eval()
    with torch.inference_mode():
        y = net(torch.randn(2, 3, 32, 32))
    assert y.shape == (2, 10)
    assert torch.isfinite(y).all()
    # 3 stages of 5 cells, 2 residual reductions
    cells = [m for m in net.modules() if type(m).__name__ == "Cell"]
    assert len(cells) == 15


def test_a_cell_without_convolutions_has_far_fewer_parameters(space):
    all_conv = space.decode([3] * 6)
    no_conv = space.decode([1] * 6)
    n = lambda a: sum(p.numel() for p in space.build_module(a).parameters())
    assert n(all_conv) > 5 * n(no_conv)


def test_imagenet16_variant_has_120_classes_and_16px_input():
    space = get_space("nasbench201", "imagenet16-120")
    net = space.build_module(space.arch_of(857)).eval()
    with torch.inference_mode():
        assert net(torch.randn(1, *space.input_shape)).shape == (1, 120)


def test_a_search_on_16px_imagenet_says_its_latencies_are_of_32px_networks(capsys):
    # The shipped tables time 32x32 networks: an ImageNet16-120 search ranked accuracies of 16x16 networks
    # by latencies of others, and said nothing of it
    from nas.run import table_input_cautions
    from nas.search import print_summary

    imagenet = get_space("nasbench201", "imagenet16-120")
    (caution,) = table_input_cautions(imagenet)
    assert "3x32x32 input (where their sources state it), and imagenet16-120's take 3x16x16" in caution
    assert table_input_cautions(imagenet, tables=["mine.csv"]) == []   # a user's tables: their input is unknown
    assert table_input_cautions(get_space("nasbench201", "cifar100")) == []
    print_summary("r", {"device": "gold_6226", "device_source": "table", "space": "nasbench201", "n_evaluated": 9,
                        "n_front": 2, "samples_measured": 3, "wall_s": 1.0, "speedup": 5.0,
                        "speedup_method": "estimated", "cautions": [caution]})
    assert f"  caution: {caution}" in capsys.readouterr().out


def test_ignores_input_is_exactly_the_cells_with_no_input_to_output_path(space):
    archs = [space.decode(g) for g in ([0] * 6,                # every edge none
                                       [3, 3, 3, 0, 0, 0],     # nodes 1, 2 fed, but nothing into node 3
                                       [3, 0, 0, 0, 0, 3],     # input -> 1, but 1 feeds nothing into 2
                                       [0, 0, 0, 1, 0, 0],     # a skip straight to the output
                                       [3, 0, 4, 0, 0, 1])]    # input -> 1 -> 2 -> 3
    assert space.ignores_input(archs).tolist() == [True, True, True, False, False]
    assert int(space.ignores_input(space.all_archs()).sum()) == 341
    assert space.ignores_input([]).shape == (0,)


def test_a_network_that_ignores_its_input_outputs_the_same_for_any_input(space):
    # what makes the latency of such an arch meaningless on a compiler that folds constants
    x1, x2 = torch.randn(2, 3, 32, 32), torch.randn(2, 3, 32, 32)
    for genome, ignores in (([3, 3, 3, 0, 0, 0], True), ([3, 0, 0, 0, 0, 3], True), ([3, 0, 4, 0, 0, 1], False)):
        arch = space.decode(genome)
        assert bool(space.ignores_input([arch])[0]) is ignores
        torch.manual_seed(0)
        net = space.build_module(arch).eval()
        with torch.inference_mode():
            # exactly equal: an untrained net's outputs differ little (1e-8 here), and not at all only
            # where nothing of the input reaches the output
            same = torch.equal(net(x1), net(x2))
        assert same is ignores
