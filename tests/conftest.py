import pytest


@pytest.fixture(autouse=True, scope="session")
def one_torch_thread():
    # On a 2-core machine shared with Ray workers, two intra-op threads per process oversubscribe the
    # cores and make small forward passes tens of times slower; the product sets threads where it measures.
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(params=[0o022, 0o027], ids=["umask022", "umask027"])
def umask(request):
    """Runs the test under each of two common umasks; the value is the umask."""
    import os

    old = os.umask(request.param)
    yield request.param
    os.umask(old)
