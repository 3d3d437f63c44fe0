"""A real local Ray: batches come back in order, and failed or lost tasks are retried; cluster
addresses that cannot work fail with a message, not a hang."""

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from nas.config import UsageError
from nas.parallel import InlineRunner, ParallelConfig, RayRunner, check_cluster_address, make_runner

ROOT = Path(__file__).resolve().parents[1]


def _fails_first_time(x: int, marker_dir: str) -> int:
    marker = Path(marker_dir) / f"{x}.tried"
    if not marker.exists():
        marker.touch()
        raise RuntimeError(f"transient failure on {x}")
    return 10 * x


def _worker_dies_first_time(x: int, marker_dir: str) -> int:
    marker = Path(marker_dir) / f"{x}.died"
    if not marker.exists():
        marker.touch()
        os._exit(1)  # the worker process is lost, not just the task
    return x + 1


@pytest.fixture(scope="module")
def ray_runner():
    # Ray workers cannot import this test module: ship its functions by value.
    from ray import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    runner = RayRunner(ParallelConfig(workers=2, batch_size=2, max_retries=2))
    yield runner
    runner.close()


@pytest.mark.slow
def test_batches_are_evaluated_in_order(ray_runner, tmp_path):
    (tmp_path / "ok").mkdir()
    for x in range(7):
        (tmp_path / "ok" / f"{x}.tried").touch()  # no failures in this run
    assert ray_runner.map(_fails_first_time, range(7), str(tmp_path / "ok")) == [10 * x for x in range(7)]


@pytest.mark.slow
def test_a_failed_task_is_retried(ray_runner, tmp_path):
    assert ray_runner.map(_fails_first_time, [1, 2, 3], str(tmp_path)) == [10, 20, 30]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["1.tried", "2.tried", "3.tried"]


@pytest.mark.slow
def test_a_lost_worker_does_not_lose_the_run(ray_runner, tmp_path):
    assert ray_runner.map(_worker_dies_first_time, [5, 6], str(tmp_path)) == [6, 7]


@pytest.mark.slow
def test_a_function_the_workers_cannot_import_is_one_error(ray_runner, tmp_path, monkeypatch):
    # as on a cluster whose nodes lack this package: a RaySystemError traceback
    (tmp_path / "driver_only_module.py").write_text("def double(x):\n    return 2 * x\n")
    monkeypatch.syspath_prepend(str(tmp_path))  # this process only: the workers started without it
    import driver_only_module

    with pytest.raises(UsageError, match="Ray workers cannot import 'driver_only_module': install it on every node, or"):
        ray_runner.map(driver_only_module.double, [1, 2])
    monkeypatch.delitem(sys.modules, "driver_only_module")


def test_cheap_work_stays_inline_without_a_cluster_address():
    assert isinstance(make_runner(ParallelConfig(workers=2), expensive=False), InlineRunner)
    assert isinstance(make_runner(None, expensive=True), InlineRunner)
    assert InlineRunner().map(lambda x, k: x * k, [1, 2], 3) == [3, 6]


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_cluster_address_where_nothing_listens_is_refused_at_once():
    # ray.init itself retries such an address for minutes (Ray 2.60).
    port = _closed_port()
    with pytest.raises(UsageError, match=f"nothing answers .*ray start --head --port {port}"):
        check_cluster_address(f"127.0.0.1:{port}")
    with pytest.raises(UsageError, match="cannot resolve"):
        check_cluster_address("no-such-host.invalid:6379")
    for malformed in ("head-node", "head-node:port", "10.0.0.1:"):
        with pytest.raises(UsageError, match="is not HOST:PORT"):
            check_cluster_address(malformed)


@pytest.mark.slow
def test_a_rays_address_and_auto_pass_the_check(ray_runner, monkeypatch):
    import ray

    gcs = ray.get_runtime_context().gcs_address  # the private Ray's: a real one
    check_cluster_address(gcs)
    monkeypatch.setenv("RAY_ADDRESS", gcs)  # where "auto" looks first
    check_cluster_address("auto")


@pytest.mark.slow
def test_auto_passes_the_check_where_ray_init_would_take_the_saved_token(ray_runner, tmp_path):
    # For the cluster `ray start` recorded, ray.init("auto") sends the token saved on this machine even
    # where RAY_AUTH_MODE is unset; the GCS probe sent none, and refused the head node's own cluster
    import ray

    if os.environ.get("RAY_AUTH_MODE", "").lower() == "disabled":
        pytest.skip("the Ray here runs without token authentication")
    (tmp_path / "ray").mkdir()  # where `ray start` records its cluster, under RAY_TMPDIR
    (tmp_path / "ray" / "ray_current_cluster").write_text(ray.get_runtime_context().gcs_address)
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_AUTH_MODE", "RAY_ADDRESS")}
    env.update(RAY_TMPDIR=str(tmp_path),
               PYTHONPATH=os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p))
    done = subprocess.run([sys.executable, "-c", "from nas.parallel import check_cluster_address as c; c('auto')"],
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]


@pytest.mark.slow
def test_another_of_rays_grpc_servers_is_not_taken_for_a_cluster(ray_runner):
    # a node's port (as the Ray Client port, 10001, would be): ray.init waited on it for minutes
    import ray

    node = ray.nodes()[0]
    address = f"{node['NodeManagerAddress']}:{node['NodeManagerPort']}"
    with pytest.raises(UsageError, match=r"a gRPC server answers at .*, but not a Ray cluster's GCS: give the port "):
        check_cluster_address(address)


@pytest.mark.slow
def test_a_refused_join_stops_the_search_before_the_predictors_fit(ray_runner, tmp_path):
    # The cluster was joined only after the fit: 5 minutes of FBNet's with an empty cache.
    import ray

    if os.environ.get("RAY_AUTH_MODE", "").lower() == "disabled":
        pytest.skip("the Ray here runs without token authentication")
    cache = tmp_path / "cache"  # empty: the fit would write its references here
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": "not-the-token", "HWNAS_CACHE_DIR": str(cache),
           "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)}
    done = subprocess.run([sys.executable, "-m", "nas.search", "--space", "fbnet", "--device", "raspi4",
                           "--ray-address", ray.get_runtime_context().gcs_address, "--out", str(tmp_path / "r"),
                           "--no-progress"], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2, done.stderr[-2000:]
    assert done.stderr.splitlines()[-1].startswith("error: cannot join the Ray cluster at ")
    assert "InvalidAuthToken" in done.stderr.splitlines()[-1]
    assert len(done.stderr.splitlines()) == 1, "ray.init's 20 s of C++ warnings before it"
    assert not cache.exists() and not (tmp_path / "r").exists()


def test_an_http_server_is_not_taken_for_a_cluster(monkeypatch):
    # e.g. the dashboard's port given for the cluster's
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    server = HTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with pytest.raises(UsageError, match=r"something listens at .*, but not as a Ray cluster does \(not a gRPC "):
            check_cluster_address(f"127.0.0.1:{server.server_address[1]}")
        monkeypatch.setenv("RAY_ADDRESS", f"127.0.0.1:{server.server_address[1]}")
        with pytest.raises(UsageError, match=r"\(from RAY_ADDRESS, for --ray-address auto\), but not as a Ray"):
            check_cluster_address("auto")
    finally:
        server.shutdown()
        server.server_close()
    monkeypatch.setenv("RAY_ADDRESS", "auto")  # which Ray reads as "any Ray running here"
    with pytest.raises(UsageError, match="--ray-address auto with RAY_ADDRESS=auto: set RAY_ADDRESS to"):
        check_cluster_address("auto")


@pytest.mark.slow  # two 5-s waits for an answer
def test_a_port_where_something_else_listens_is_refused():
    # ray.init waited on it without end (over 5 minutes, Ray 2.60)
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        for address in (f"127.0.0.1:{server.getsockname()[1]}", f"ray://127.0.0.1:{server.getsockname()[1]}"):
            with pytest.raises(UsageError, match=r"something listens at .*, but not as a Ray cluster does \(no answer "):
                check_cluster_address(address)


@pytest.mark.slow
def test_auto_without_a_cluster_is_refused_at_once_even_beside_a_private_ray(ray_runner, monkeypatch):
    # "auto" passed the check, and ray.init refused it only after the predictor's fit; and ray.init
    # joined any Ray it found running, such as another search's private one (here ray_runner's)
    port = _closed_port()
    monkeypatch.setenv("RAY_ADDRESS", f"127.0.0.1:{port}")
    with pytest.raises(UsageError, match=f"nothing answers at the Ray address '127.0.0.1:{port}'"):
        check_cluster_address("auto")
    monkeypatch.delenv("RAY_ADDRESS")
    from ray._private.services import find_bootstrap_address

    if find_bootstrap_address(None):
        pytest.skip("`ray start` has left a cluster on this machine, which auto joins")
    with pytest.raises(UsageError, match="--ray-address auto: RAY_ADDRESS is not set and `ray start` has recorded no cluster"):
        check_cluster_address("auto")


@pytest.mark.slow
def test_the_default_local_ray_ignores_a_cluster_found_in_the_environment():
    # Without an address, ray.init joins the cluster in RAY_ADDRESS or the one `ray start` left on
    # this machine (and then refuses num_cpus). The default must start a Ray of its own all the same:
    # here RAY_ADDRESS names a port where nothing listens, which ray.init would wait on for minutes.
    code = ("from nas.parallel import ParallelConfig, RayRunner\n"
            "with RayRunner(ParallelConfig(workers=1)) as r:\n"
            "    print('workers', r.workers, r.map(abs, [-1, -2]))\n")
    env = {**os.environ, "RAY_ADDRESS": f"127.0.0.1:{_closed_port()}",
           "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "workers 1 [1, 2]" in done.stdout


def test_each_local_ray_puts_the_checkout_on_the_workers_path_once(monkeypatch):
    # every start prepended the checkout again: `nas.benchmark throughput` ended with root:root:...
    import ray

    from nas.parallel import start_local_ray

    calls = []
    monkeypatch.setattr(ray, "init", lambda **kw: calls.append(kw))   # the path, not a Ray, is under test
    monkeypatch.setenv("PYTHONPATH", "/elsewhere")
    root = str(Path(__file__).resolve().parents[1])
    for workers in (1, 2):
        start_local_ray(workers)
    assert os.environ["PYTHONPATH"].split(os.pathsep) == [root, "/elsewhere"]
    assert [(c["address"], c["num_cpus"]) for c in calls] == [("local", 1), ("local", 2)]


def _child_env() -> dict:
    """This environment with the checkout first on PYTHONPATH, for a child Python running `-c` code."""
    return {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)}


def _child(code: str) -> subprocess.Popen:
    """`python -c code` with its stdout piped, to be sent signals as a command line would be."""
    return subprocess.Popen([sys.executable, "-c", code], env=_child_env(), stdout=subprocess.PIPE, text=True,
                            preexec_fn=_signals_to_default)


def _signals_to_default() -> None:
    """SIGINT and SIGTERM back to the system's default in a child: a test suite started in the background
    (as CI may be) passes SIGINT on ignored, and Python then never turns it into KeyboardInterrupt."""
    for s in (signal.SIGINT, signal.SIGTERM):
        signal.signal(s, signal.SIG_DFL)


def _ray_processes() -> set[int]:
    """PIDs of processes whose title Ray set (ray::DashboardAgent, ray::RuntimeEnvAgent, ray::IDLE, ...)."""
    pids = set()
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and (entry / "cmdline").read_bytes().startswith(b"ray::"):
                pids.add(int(entry.name))
        except OSError:  # gone meanwhile
            pass
    return pids


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_while_the_local_ray_starts_leaves_no_ray_processes(signum):
    # ray.init stopped half-way left ray::DashboardAgent and ray::RuntimeEnvAgent running for a minute;
    # a SIGTERM met ray.init's own handler, which exits from where the start is (status 15)
    before = _ray_processes()
    code = ("import ray\n"
            "from nas.config import setup_command_line\n"
            "from nas.parallel import ParallelConfig, RayRunner\n"
            "setup_command_line()\n"
            "print('starting', flush=True)\n"
            "try:\n"
            "    RayRunner(ParallelConfig(workers=1))\n"
            "except KeyboardInterrupt:\n"
            "    print('interrupted', flush=True)\n")
    proc = _child(code)
    assert proc.stdout.readline() == "starting\n"
    time.sleep(1.0)   # inside ray.init, which takes seconds (were it done, nothing should be left either)
    proc.send_signal(signum)
    out, _ = proc.communicate(timeout=120)
    assert out == "interrupted\n" and proc.returncode == 0
    time.sleep(3)
    assert not _ray_processes() - before


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_first_ctrl_c_is_held_while_ray_starts_and_a_second_is_not(signum):
    # every Ctrl-C was held: a start that hung (a minute waiting for a GCS) could not be left
    from nas.parallel import _interrupts_held

    # Python's own SIGINT handler, and SIGTERM's as setup_command_line puts it in: a test suite started
    # in the background (as CI may be) has SIGINT ignored, and an ignored signal is never held.
    kept = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    for s in kept:
        signal.signal(s, signal.default_int_handler)
    try:
        before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
        held = []
        with pytest.raises(KeyboardInterrupt):
            with _interrupts_held() as received:
                os.kill(os.getpid(), signum)
                time.sleep(0.1)
                held.append(list(received))   # the first one was held, not raised
                os.kill(os.getpid(), signum)
                time.sleep(0.1)
                pytest.fail("the second Ctrl-C was held too")
        assert held == [[signum]]
        assert {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)} == before
    finally:
        for s, handler in kept.items():
            signal.signal(s, handler)


def test_an_ignored_sigterm_stays_ignored_and_is_never_held():
    # `trap '' TERM` (or nohup's like) in the parent: the command line must not start stopping on it
    from nas.config import setup_command_line
    from nas.parallel import _interrupts_held

    term = signal.getsignal(signal.SIGTERM)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        setup_command_line()
        assert signal.getsignal(signal.SIGTERM) == signal.SIG_IGN
        with _interrupts_held() as received:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.1)
        assert received == [] and signal.getsignal(signal.SIGTERM) == signal.SIG_IGN
    finally:
        signal.signal(signal.SIGTERM, term)


def test_a_default_sigterm_is_left_to_what_ray_init_puts_in_place():
    # in a process not set up as our command line (a library user's, pytest's), SIG_DFL put back after
    # ray.init would end the process outright, where ray.init's handler exits through Python's clean-up
    from nas.parallel import _interrupts_held

    term = signal.getsignal(signal.SIGTERM)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    try:
        def rays(signum, frame):
            raise SystemExit(signum)

        with _interrupts_held():
            signal.signal(signal.SIGTERM, rays)   # as ray.init does
        assert signal.getsignal(signal.SIGTERM) is rays
    finally:
        signal.signal(signal.SIGTERM, term)


@pytest.mark.slow
def test_sigterm_after_the_local_ray_started_is_a_ctrl_c_not_rays_exit():
    # ray.init put a SIGTERM handler of its own in place: the run ended at once (status 143), past our
    # clean-up, and Ray's agents ran on for a minute
    before = _ray_processes()
    code = ("import time\n"
            "from nas.config import setup_command_line\n"
            "from nas.parallel import ParallelConfig, RayRunner\n"
            "setup_command_line()\n"
            "with RayRunner(ParallelConfig(workers=1)):\n"
            "    print('started', flush=True)\n"
            "    try:\n"
            "        time.sleep(120)\n"
            "    except KeyboardInterrupt:\n"
            "        print('interrupted', flush=True)\n")
    proc = _child(code)
    assert proc.stdout.readline() == "started\n"
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0 and out == "interrupted\n"
    time.sleep(3)
    assert not _ray_processes() - before


@pytest.mark.slow
def test_a_ray_without_cpus_is_refused_not_waited_on_for_ever():
    # a head started with --num-cpus 0: every task waits for a CPU, and the search printed nothing, for ever
    code = ("import ray\n"
            "from nas.config import UsageError\n"
            "from nas.parallel import ParallelConfig, RayRunner\n"
            "ray.init(address='local', num_cpus=0, include_dashboard=False, log_to_driver=False)\n"
            "try:\n"
            "    RayRunner(ParallelConfig(address='127.0.0.1:6379'))\n"
            "except UsageError as exc:\n"
            "    print(exc)\n"
            "print('connected', ray.is_initialized())\n")
    done = subprocess.run([sys.executable, "-c", code], env=_child_env(), capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.splitlines() == [
        "the Ray cluster at 127.0.0.1:6379 has no CPUs for tasks (its nodes were started with --num-cpus 0?): add a "
        "node with CPUs, or search without --ray-address", "connected True"]
