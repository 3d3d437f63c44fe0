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


def _new_folder_in(variable: str, folder):
    """Point the environment `variable` at `folder` for the test run (child processes included), then restore it."""
    import os

    old = os.environ.get(variable)
    os.environ[variable] = str(folder)
    yield
    if old is None:
        os.environ.pop(variable, None)
    else:
        os.environ[variable] = old


@pytest.fixture(autouse=True, scope="session")
def fresh_cache(tmp_path_factory):
    """Fits cache their slow parts under $HWNAS_CACHE_DIR: a new folder per test run, so that no test
    reads an entry that older code wrote."""
    yield from _new_folder_in("HWNAS_CACHE_DIR", tmp_path_factory.mktemp("hwnas-cache"))


@pytest.fixture(autouse=True, scope="session")
def own_profiles_dir(tmp_path_factory):
    """Device profiles under $HWNAS_PROFILES_DIR: a new, empty folder per test run, so that no test
    reads the user's own profiles or leaves one there. A stray profile there once made tests fail
    that list the known devices."""
    yield from _new_folder_in("HWNAS_PROFILES_DIR", tmp_path_factory.mktemp("hwnas-profiles"))


@pytest.fixture(params=[0o022, 0o027], ids=["umask022", "umask027"])
def umask(request):
    """Runs the test under each of two common umasks; the value is the umask."""
    import os

    old = os.umask(request.param)
    yield request.param
    os.umask(old)
