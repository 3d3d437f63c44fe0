"""Running batches of candidate evaluations: inline, or as Ray tasks on a local or existing cluster.

Ray pays for itself when one evaluation costs tens of milliseconds or more (a proxy score on a
PyTorch module, a latency measurement). Table look-ups and predictor calls cost microseconds per
candidate, so they stay inline in the driver: shipping them to a worker would cost more than the work.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import signal
import socket
import threading
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from nas.config import UsageError


@dataclass(frozen=True)
class ParallelConfig:
    workers: int | None = None          # local Ray CPUs; None: as many as this machine has
    address: str | None = None          # join this cluster instead of starting a local one
    batch_size: int = 4                 # candidates per task: amortises Ray's per-task overhead
    max_retries: int = 3                # a failed or lost task is resubmitted this many times


def _call_batch(fn: Callable, args: tuple, items: Sequence) -> list:
    # One thread per task: parallelism comes from running tasks side by side, and two
    # multi-threaded PyTorch workers on 2 cores would only fight over them.
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:
        pass
    return [fn(item, *args) for item in items]


class InlineRunner:
    """Evaluates in the calling process: for cheap work, and when Ray is not wanted."""

    name = "inline"

    def map(self, fn: Callable, items: Sequence, *args: Any) -> list:
        return [fn(item, *args) for item in items]

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class RayRunner(InlineRunner):
    """Evaluates batches as Ray tasks; each task is retried on failure or loss of its worker."""

    name = "ray"

    def __init__(self, config: ParallelConfig):
        import ray

        self.config = config
        self._ray = ray
        self._started_here = False
        if not ray.is_initialized():
            if config.address:
                _join_cluster(ray, config.address)
            else:
                start_local_ray(config.workers)
            self._started_here = True
        cpus = ray.cluster_resources().get("CPU", 0)
        if cpus < 1:  # every task asks for one CPU: the search would wait for ever, saying nothing
            self.close()
            raise UsageError(f"the Ray cluster at {config.address or 'this machine'} has no CPUs for tasks (its nodes "
                             "were started with --num-cpus 0?): add a node with CPUs, or search without --ray-address")
        self._remote = ray.remote(_call_batch)
        self._put: dict[tuple, Any] = {}
        self.workers = int(cpus)

    def map(self, fn: Callable, items: Sequence, *args: Any) -> list:
        ray = self._ray
        items = list(items)
        size = max(1, self.config.batch_size)
        batches = [items[i:i + size] for i in range(0, len(items), size)]
        opts = dict(num_cpus=1, max_retries=self.config.max_retries, retry_exceptions=True)
        # Arguments (a search space with its tables, say) go to the object store once, not per task.
        key = tuple(id(a) for a in args)
        if key not in self._put:
            _ship_user_modules_by_value((fn, *args))
            self._put[key] = (args, ray.put(args))
        args_ref = self._put[key][1]
        refs = [self._remote.options(**opts).remote(fn, args_ref, batch) for batch in batches]
        out = []
        try:
            for ref in refs:
                out.extend(ray.get(ref))
        except ray.exceptions.RayError as exc:
            # What we run returns a user's errors rather than raising them: this is Ray's own failure.
            raise UsageError(_ray_failure(exc)) from None
        return out

    def close(self) -> None:
        if self._started_here and self._ray.is_initialized():
            self._ray.shutdown()


def start_local_ray(num_cpus: int | None) -> None:
    """ray.init a Ray of our own on this machine, with `num_cpus` CPUs (None: all of them).

    "local", even where `ray start` left a cluster running on this machine, which ray.init would
    otherwise join (and refuse our num_cpus for). Its workers import our packages from the driver's
    checkout, installed or not: they inherit PYTHONPATH, so the checkout is put first in it (once).
    A Ctrl-C or SIGTERM during the start is handled by `_init_held`.
    """
    import ray

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    path = os.environ.get("PYTHONPATH", "").split(os.pathsep)
    if root not in path:
        os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (root, *path) if p)
    quiet_token_notice()
    _init_held(ray, address="local", num_cpus=num_cpus, include_dashboard=False, log_to_driver=False,
               configure_logging=False)


def _init_held(ray, **kwargs) -> None:
    """ray.init(**kwargs), with a Ctrl-C or SIGTERM during it held until Ray is up, then Ray shut down
    and KeyboardInterrupt raised: ray.init stopped half-way left Ray's agents running for a minute.

    ray.init puts in a SIGTERM handler of its own as its first step, which exits from wherever the
    start is (SystemExit(15)) and leaves Ray half-started, its agents running on: it is kept from doing
    so while the start is held (through Ray's private helper for it, where that still exists; else a
    SystemExit(15) from the start is taken as the same interrupt). Afterwards the handlers from before
    are put back (`_interrupts_held`)."""
    utils = getattr(getattr(ray, "_private", None), "utils", None)
    own_handler = getattr(utils, "set_sigterm_handler", None)
    # Only where a Python handler of ours is in place to hold it (`_interrupts_held`'s rule).
    ours = threading.current_thread() is threading.main_thread() and callable(signal.getsignal(signal.SIGTERM))
    with _interrupts_held() as interrupted:
        try:
            if own_handler is not None and ours:
                utils.set_sigterm_handler = lambda handler: None
            ray.init(**kwargs)
        except SystemExit as exc:
            if exc.code != signal.SIGTERM:
                raise
            interrupted.append(signal.SIGTERM)
        finally:
            if own_handler is not None and ours:
                utils.set_sigterm_handler = own_handler
    if interrupted:
        ray.shutdown()
        raise KeyboardInterrupt


@contextlib.contextmanager
def _interrupts_held():
    """Within the block, a first SIGINT or SIGTERM is recorded in the list yielded instead of raised; a
    second one is raised at once (a start that hangs can still be left). Main thread only, where Python
    delivers signals; a signal is held only where a Python handler of its own is in place (not where it
    is ignored, as in a background job, or left to the system's default). Afterwards each handler that
    was chosen (a Python one, or ignoring) is put back, taking it back from whatever replaced it inside
    the block; one left to the system's default stays as the block left it (ray.init's SIGTERM handler
    exits through Python's clean-up, gentler than the default)."""
    received: list[int] = []
    signums = (signal.SIGINT, signal.SIGTERM)
    previous = {s: signal.getsignal(s) for s in signums}
    if threading.current_thread() is not threading.main_thread() or None in previous.values():
        yield received
        return
    held = [s for s in signums if callable(previous[s])]

    def hold(signum, frame):
        if received:
            for s in held:
                signal.signal(s, previous[s])
            raise KeyboardInterrupt
        received.append(signum)

    for s in held:
        signal.signal(s, hold)
    try:
        yield received
    finally:
        for s in signums:
            if previous[s] != signal.SIG_DFL:
                signal.signal(s, previous[s])


class _DropMessage(logging.Filter):
    def __init__(self, text: str):
        super().__init__()
        self.text = text

    def filter(self, record: logging.LogRecord) -> bool:
        return self.text not in record.getMessage()


def drop_log_message(logger_name: str, text: str) -> None:
    """Drop the records of logger `logger_name` that contain `text` (once, however often called):
    for a notice of Ray's that the user has nothing to do about."""
    logger = logging.getLogger(logger_name)
    if not any(isinstance(f, _DropMessage) and f.text == text for f in logger.filters):
        logger.addFilter(_DropMessage(text))


def quiet_token_notice() -> None:
    """Ray >= 2.59 announces on every local start that it turned token authentication on, and how to
    opt out: a notice about the private Ray of one search, which the user has nothing to do about.
    Only that notice is dropped (a warning that authentication is off still shows)."""
    drop_log_message("ray._private.authentication.authentication_token_setup",
                     "Token authentication is enabled for this Ray cluster")


def _ray_failure(exc: Exception) -> str:
    """One line for a task Ray could not run, naming the fix where it is known."""
    from search_spaces.registry import PROJECT_PACKAGES

    missing = re.search(r"No module named '([^']+)'", str(exc))
    if missing and missing.group(1).split(".")[0] in PROJECT_PACKAGES:
        # A cluster's nodes run the Python that `ray start` ran in, where this package may be missing.
        return (f"Ray workers cannot import {missing.group(1)!r}: install this package (python -m pip install .) "
                "into the Python environment of every node, the one `ray start` ran in")
    if missing:
        return (f"Ray workers cannot import {missing.group(1)!r}: install it on every node, or, if your space file "
                "imports it from its own folder, import it at the file's top level (those are sent to the workers)")
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return f"Ray could not run a task ({type(exc).__name__}): {lines[-1] if lines else 'no message'}"


# An HTTP/2 client's opening (its preface and an empty SETTINGS frame): a gRPC server, as Ray's GCS
# and Ray Client server are, answers with a SETTINGS frame of its own (frame type 4, the 4th byte).
_HTTP2_HELLO = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes([0, 0, 0, 4, 0, 0, 0, 0, 0])


def check_cluster_address(address: str) -> None:
    """Raise UsageError unless `address` is a HOST:PORT where a Ray cluster's GCS answers and lets
    this client in, or "auto" and such a cluster can be found.

    ray.init retries a silent address for minutes, and waits without end on a port where something
    other than Ray listens, or another of Ray's gRPC servers (its Ray Client port given without
    ray://, a node's port); a refused token costs it 20 s of warnings. A connection and one GCS call
    say each in a second.
    """
    where, recorded = repr(address), False
    if address == "auto":
        address, source = _auto_address()
        recorded = source != "RAY_ADDRESS"
        if address == "auto":
            return  # this Ray finds clusters some other way: ray.init will say if there is none
        where = f"{address!r} (from {source}, for --ray-address auto)"
    host, sep, port = address.removeprefix("ray://").rpartition(":")
    if not (sep and port.isdigit() and 1 <= int(port) <= 65535):  # a port past 65535 was offered to `ray start`
        raise UsageError(f"the Ray address {where} is not HOST:PORT (e.g. 10.0.0.1:6379, a port from 1 to 65535) "
                         "or 'auto'")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=5) as conn:
            reply = _first_reply(conn)
    except socket.gaierror as exc:
        raise UsageError(f"cannot resolve the Ray address {where}: {exc.strerror or exc}") from None
    except OSError as exc:
        start = ("ray start --head (Ray Client listens on 10001 unless --ray-client-server-port says otherwise)"
                 if address.startswith("ray://") else f"ray start --head --port {port}")
        raise UsageError(f"nothing answers at the Ray address {where} ({exc.strerror or exc}); "
                         f"start the cluster there first: {start}") from None
    if reply is None or (len(reply) >= 4 and reply[3] == 4):
        if not address.startswith("ray://"):  # a Ray Client server is no GCS, rightly
            # ray.init("auto") takes the token `ray start` saved on this machine for the cluster it
            # recorded, where a plain client sends none: a refusal here would not be ray.init's.
            _check_gcs(address, where, token_refusal_is_final=not recorded)
        return
    if reply[:1] in (b"\x15", b"\x16"):  # a TLS alert or handshake record
        raise UsageError(f"the server at {where} speaks TLS: set RAY_USE_TLS=1 and the certificate variables the "
                         "cluster's nodes use")
    heard = "no answer within 5 s" if not reply else "not a gRPC reply"
    raise UsageError(f"something listens at {where}, but not as a Ray cluster does ({heard}): give the port "
                     f"`ray start --head --port` was given (6379 by default; the dashboard's 8265 is not it)")


def _check_gcs(address: str, where: str, token_refusal_is_final: bool = True) -> None:
    """UsageError where the gRPC server at `address` is not a Ray GCS, or refuses this client's token
    (where `token_refusal_is_final`)."""
    try:
        import ray.exceptions
        from ray._raylet import GcsClient  # not public API: guarded
    except ImportError:
        return
    outcome: list = []

    def connect():
        try:
            GcsClient(address=address)
            outcome.append(None)
        except Exception as exc:  # noqa: BLE001 - sorted out below; an unknown kind is left to ray.init
            outcome.append(exc)

    # Ray's C++ client writes a warning to stderr for each failure sorted out below, which the
    # error line then says better; and an unforeseen wait is left to ray.init, not waited on here.
    with _stderr_silenced():
        thread = threading.Thread(target=connect, daemon=True)
        thread.start()
        thread.join(timeout=15)
    exc = outcome[0] if outcome else None
    if token_refusal_is_final and isinstance(exc, getattr(ray.exceptions, "AuthenticationError", ())):
        raise UsageError(f"cannot join the Ray cluster at {where}: {_auth_advice(str(exc))}") from None
    if isinstance(exc, ray.exceptions.RpcError) and getattr(exc, "rpc_code", None) == 12:  # UNIMPLEMENTED
        raise UsageError(f"a gRPC server answers at {where}, but not a Ray cluster's GCS: give the port `ray start "
                         "--head --port` was given (6379 by default), not the Ray Client port (10001) or a node's")


@contextlib.contextmanager
def _stderr_silenced():
    """File descriptor 2 sent to /dev/null: where C++ libraries write past Python's sys.stderr."""
    import sys

    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _auth_advice(reason: str) -> str:
    """Ray's reason for refusing this client, first line, and what to set where it is a token."""
    reason = reason.splitlines()[0] if reason else "refused"
    if os.environ.get("RAY_AUTH_MODE") != "token":
        # Since Ray 2.59 `ray start` turns token authentication on, and a client given a
        # HOST:PORT sends no token unless told to.
        reason += ("; if the cluster uses token authentication (`ray start` turns it on since Ray "
                   "2.59), set RAY_AUTH_MODE=token and RAY_AUTH_TOKEN to what `ray get-auth-token` "
                   "prints on its head node")
    return reason


def _first_reply(conn: socket.socket) -> bytes | None:
    """Up to the first 4 bytes a server sends back to an HTTP/2 opening (fewer where it goes silent
    or hangs up); None where that cannot tell, with TLS turned on."""
    if os.environ.get("RAY_USE_TLS", "0").lower() in ("1", "true"):
        return None
    reply = b""
    try:
        conn.sendall(_HTTP2_HELLO)
        while len(reply) < 4:
            chunk = conn.recv(4 - len(reply))
            if not chunk:
                break
            reply += chunk
    except OSError:  # silence past the timeout, or the connection reset
        pass
    return reply


def _auto_address() -> tuple[str, str]:
    """The cluster "auto" means and where it was found: RAY_ADDRESS, else the one `ray start` last
    started on this machine.

    Where neither exists, ray.init("auto") would join any Ray it finds running here, such as another
    search's private one: that is refused instead. (`ray start --temp-dir` records its cluster
    elsewhere: join that one by its HOST:PORT.)
    """
    try:
        from ray._private.services import get_ray_address_from_environment  # not public API: guarded
    except ImportError:
        return "auto", ""
    env = os.environ.get("RAY_ADDRESS", "")
    if env in ("auto", "local"):  # Ray reads "auto" there as "any Ray found", and "local" as a new one
        raise UsageError(f"--ray-address auto with RAY_ADDRESS={env}: set RAY_ADDRESS to the cluster's HOST:PORT, "
                         "or unset it to join the cluster `ray start` recorded on this machine")
    found = get_ray_address_from_environment(None, None)  # None, not "auto": no fallback to any Ray
    if not found:
        raise UsageError("--ray-address auto: RAY_ADDRESS is not set and `ray start` has recorded no cluster on this "
                         "machine; `ray start --head` starts one (one started with --temp-dir: give its HOST:PORT)")
    return found, "RAY_ADDRESS" if env else "the cluster `ray start` recorded"


def _join_cluster(ray, address: str) -> None:
    """ray.init on an existing cluster, with the ways it fails turned into errors a user can act on.
    `check_cluster_address` has checked the address, before the predictor's fit."""
    # AuthenticationError is Ray >= 2.52's; older versions fail with ConnectionError alone.
    auth_error = getattr(ray.exceptions, "AuthenticationError", ConnectionError)
    if address == "auto":
        # Again: ray.init("auto") would join any Ray it finds where this finds none. The address stays
        # "auto" for ray.init, which given "auto" also takes the token `ray start` saved here.
        _auto_address()
    try:
        _init_held(ray, address=address, log_to_driver=False)
    except ValueError as exc:  # what check_cluster_address lets through and Ray still cannot parse
        raise UsageError(f"--ray-address {address!r}: {exc}") from None
    except (ConnectionError, auth_error) as exc:
        raise UsageError(f"cannot join the Ray cluster at {address!r}: "
                         f"{_auth_advice(str(exc) or type(exc).__name__)}") from None


def _ship_user_modules_by_value(objects) -> None:
    """Workers cannot import a space loaded from a file path by module name, nor the modules it
    imported from beside it: pickle them by value (a package's submodules come with it)."""
    import sys

    from ray import cloudpickle

    from search_spaces.registry import modules_beside

    for obj in objects:
        module = sys.modules.get(getattr(obj if callable(obj) else type(obj), "__module__", "") or "")
        for shipped in modules_beside(module):
            cloudpickle.register_pickle_by_value(shipped)


def make_runner(config: ParallelConfig | None, expensive: bool):
    """Ray for expensive evaluations (or whenever a cluster address is given), inline otherwise."""
    if config is None or (not expensive and not config.address):
        return InlineRunner()
    return RayRunner(config)
