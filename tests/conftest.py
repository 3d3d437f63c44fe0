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


@pytest.fixture(autouse=True, scope="session")
def fresh_cache(tmp_path_factory):
    """Fits cache their slow parts under $HWNAS_CACHE_DIR: a new folder per test run (child processes
    included), so that no test reads an entry that older code wrote."""
    import os

    old = os.environ.get("HWNAS_CACHE_DIR")
    os.environ["HWNAS_CACHE_DIR"] = str(tmp_path_factory.mktemp("hwnas-cache"))
    yield
    if old is None:
        os.environ.pop("HWNAS_CACHE_DIR", None)
    else:
        os.environ["HWNAS_CACHE_DIR"] = old


@pytest.fixture(autouse=True, scope="session")
def own_profiles_dir(tmp_path_factory):
    """Device profiles under $HWNAS_PROFILES_DIR: a new, empty folder per test run (child processes
    included), so that no test reads the user's own profiles or leaves one there. A stray profile
    there once made tests fail that list the known devices."""
    import os

    old = os.environ.get("HWNAS_PROFILES_DIR")
    os.environ["HWNAS_PROFILES_DIR"] = str(tmp_path_factory.mktemp("hwnas-profiles"))
    yield
    if old is None:
        os.environ.pop("HWNAS_PROFILES_DIR", None)
    else:
        os.environ["HWNAS_PROFILES_DIR"] = old


@pytest.fixture(params=[0o022, 0o027], ids=["umask022", "umask027"])
def umask(request):
    """Runs the test under each of two common umasks; the value is the umask."""
    import os

    old = os.umask(request.param)
    yield request.param
    os.umask(old)
