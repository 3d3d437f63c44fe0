"""Running batches of candidate evaluations: inline, or as Ray tasks on a local or existing cluster.

Ray pays for itself when one evaluation costs tens of milliseconds or more (a proxy score on a
PyTorch module, a latency measurement). Table look-ups and predictor calls cost microseconds per
candidate, so they stay inline in the driver: shipping them to a worker would cost more than the work.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from nas.config import UsageError


@dataclass(frozen=True)
class ParallelConfig:
    workers: int | None = None          # local Ray CPUs; None: as many as this machine has
    address: str | None = None          # join this cluster instead of starting a local one
    batch_size: int = 4                 # candidates per task: amortises Ray's per-task overhead
    max_retries: int = 3                # a failed or lost task is resubmitted this many times
    device_resources: tuple[str, ...] = ()   # custom resources of this node, e.g. ("device:local",)


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

    def map(self, fn: Callable, items: Sequence, *args: Any, resources: dict | None = None) -> list:
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
                # Workers import our packages from the driver's path, installed or not.
                root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
                path = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)
                os.environ["PYTHONPATH"] = path
                # "local": a Ray of our own even where `ray start` left a cluster running on this
                # machine, which ray.init would otherwise join (and refuse our num_cpus for).
                ray.init(address="local", num_cpus=config.workers, include_dashboard=False,
                         log_to_driver=False, resources={r: 1 for r in config.device_resources},
                         configure_logging=False)
            self._started_here = True
        self._remote = ray.remote(_call_batch)
        self._put: dict[tuple, Any] = {}
        self.workers = int(ray.cluster_resources().get("CPU", 1))

    def map(self, fn: Callable, items: Sequence, *args: Any, resources: dict | None = None) -> list:
        ray = self._ray
        items = list(items)
        size = max(1, self.config.batch_size)
        batches = [items[i:i + size] for i in range(0, len(items), size)]
        opts = dict(num_cpus=1, max_retries=self.config.max_retries, retry_exceptions=True)
        if resources:
            opts["resources"] = resources
        # Arguments (a search space with its tables, say) go to the object store once, not per task.
        key = tuple(id(a) for a in args)
        if key not in self._put:
            _ship_user_modules_by_value((fn, *args))
            self._put[key] = (args, ray.put(args))
        args_ref = self._put[key][1]
        refs = [self._remote.options(**opts).remote(fn, args_ref, batch) for batch in batches]
        out = []
        for ref in refs:
            out.extend(ray.get(ref))
        return out

    def close(self) -> None:
        if self._started_here and self._ray.is_initialized():
            self._ray.shutdown()


def check_cluster_address(address: str) -> None:
    """Raise UsageError unless `address` is a HOST:PORT where something listens, or "auto" and a cluster
    can be found: ray.init would retry a silent address for minutes, a plain TCP connect says so in
    seconds."""
    if address == "auto":
        address = _auto_address()
        if address == "auto":
            return  # this Ray finds clusters some other way: ray.init will say if there is none
    host, sep, port = address.removeprefix("ray://").rpartition(":")
    if not (sep and port.isdigit() and 1 <= int(port) <= 65535):  # a port past 65535 was offered to `ray start`
        raise UsageError(f"--ray-address {address!r} is not HOST:PORT (e.g. 10.0.0.1:6379, a port from 1 to "
                         "65535) or 'auto'")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=5).close()
    except socket.gaierror as exc:
        raise UsageError(f"cannot resolve the Ray address {address!r}: {exc.strerror or exc}") from None
    except OSError as exc:
        raise UsageError(f"nothing answers at the Ray address {address!r} ({exc.strerror or exc}); "
                         f"start the cluster there first: ray start --head --port {port}") from None


def _auto_address() -> str:
    """The HOST:PORT that ray.init("auto") would join: RAY_ADDRESS, else the cluster `ray start` left on
    this machine. Found before the predictor's fit, where ray.init would say there is none only after it."""
    try:
        from ray._private.services import get_ray_address_from_environment  # not public API: guarded
    except ImportError:
        return "auto"
    try:
        found = get_ray_address_from_environment("auto", None)
    except ConnectionError:
        raise UsageError("--ray-address auto: no Ray cluster runs on this machine (nor in RAY_ADDRESS); "
                         "`ray start --head` starts one") from None
    return found if isinstance(found, str) and found != "auto" else "auto"


def _join_cluster(ray, address: str) -> None:
    """ray.init on an existing cluster, with the ways it fails turned into errors a user can act on.
    The address itself is checked once, by `check_cluster_address` before the predictor's fit."""
    # AuthenticationError is Ray >= 2.52's; older versions fail with ConnectionError alone.
    auth_error = getattr(ray.exceptions, "AuthenticationError", ConnectionError)
    try:
        ray.init(address=address, log_to_driver=False)
    except ValueError as exc:  # what check_cluster_address lets through and Ray still cannot parse
        raise UsageError(f"--ray-address {address!r}: {exc}") from None
    except (ConnectionError, auth_error) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if address == "auto":
            reason = "no Ray cluster runs on this machine (nor in RAY_ADDRESS); `ray start --head` starts one"
        elif os.environ.get("RAY_AUTH_MODE") != "token":
            # Since Ray 2.59 `ray start` turns token authentication on, and a client given a
            # HOST:PORT sends no token unless told to.
            reason += ("; if the cluster uses token authentication (`ray start` turns it on since Ray "
                       "2.59), set RAY_AUTH_MODE=token and RAY_AUTH_TOKEN to what `ray get-auth-token` "
                       "prints on its head node")
        raise UsageError(f"cannot join the Ray cluster at {address!r}: {reason}") from None


def _ship_user_modules_by_value(objects) -> None:
    """Workers cannot import a space loaded from a file path by module name: pickle its module by value."""
    import sys

    from ray import cloudpickle

    for obj in objects:
        module = sys.modules.get(getattr(obj if callable(obj) else type(obj), "__module__", "") or "")
        if module is not None and getattr(module, "__hwnas_user_file__", None):
            cloudpickle.register_pickle_by_value(module)
            for name in getattr(module, "__hwnas_helpers__", ()):  # the modules it imported from beside it
                cloudpickle.register_pickle_by_value(sys.modules[name])


def make_runner(config: ParallelConfig | None, expensive: bool):
    """Ray for expensive evaluations (or whenever a cluster address is given), inline otherwise."""
    if config is None or (not expensive and not config.address):
        return InlineRunner()
    return RayRunner(config)
