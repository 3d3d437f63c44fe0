"""Inference latency of architectures on this machine, one at a time, as medians of repeated runs.

Latency here is the wall-clock time of one forward pass in ms (`time.perf_counter`), in eval mode
under `torch.inference_mode`, with a fixed number of torch threads, after a warm-up. We report the
median and the quartiles rather than the mean: on a shared machine other jobs add a long tail of
slow runs that would drag a mean but leave the median where the architecture is.
"""

from __future__ import annotations

import gc
import os
import platform
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import numpy as np


# What `nas.search --device` takes to mean this machine, measured during the search: never the
# name of a table's device or of a saved profile, which would shadow it.
LOCAL_DEVICES = ("local", "local-cuda")


class MeasurementError(Exception):
    """A measurement could not be made (module does not build or run, device not available)."""


@dataclass
class MeasureConfig:
    """How to measure: batch size, warm-up and timed runs per architecture, torch threads, device.

    The defaults (10 warm-up, 50 timed runs) take 0.3 s per NAS-Bench-201 network at batch 1 on one
    core of a 2-core EPYC VM (build included; up to 0.8 s while other jobs load it), with an IQR of
    ~5% of the median when the machine is quiet. `device` is "cpu" or "cuda". `rounds` > 1 interleaves the archs of one `measure_archs`
    call (see there): for comparing archs on a machine that other jobs share.
    """

    batch_size: int = 1
    warmup: int = 10
    runs: int = 50
    threads: int = 1
    device: str = "cpu"
    rounds: int = 1

    def __post_init__(self):
        for name in ("batch_size", "runs", "threads", "rounds"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"MeasureConfig.{name} must be at least 1, got {getattr(self, name)}")
        if int(self.warmup) < 0:
            raise ValueError(f"MeasureConfig.warmup must be at least 0, got {self.warmup}")
        if self.device not in ("cpu", "cuda"):
            raise ValueError(f"MeasureConfig.device must be 'cpu' or 'cuda', got {self.device!r}")

    @property
    def warmup_per_round(self) -> int:
        """Warm-up runs before each round's timed runs. Each round comes back to an arch whose weights
        left the caches, so each warms up again, with a share of `warmup` rounded up: at least one
        run, unless none was asked for."""
        return -(-int(self.warmup) // min(int(self.rounds), int(self.runs)))

    def describe_runs(self) -> str:
        """'10 warm-up + 50 runs', or '2 warm-up before each of 5 interleaved rounds, 50 runs in all'."""
        rounds = min(int(self.rounds), int(self.runs))
        if rounds == 1:
            return f"{self.warmup} warm-up + {self.runs} runs"
        return f"{self.warmup_per_round} warm-up before each of {rounds} interleaved rounds, {self.runs} runs in all"


@dataclass
class Measurement:
    """Latency of one forward pass in ms: median and quartiles over `runs` timed runs.

    `wall_s` is what the whole measurement took (warm-up and timed runs, not the build), so a caller
    can estimate the cost of measuring many candidates. `cpu_median_ms` is the median CPU time of
    the calling thread per run, only for one thread on the CPU (else None): other jobs on a shared
    machine stretch wall time while this process waits for a core, but not its CPU time, so a
    `median_ms` far above `cpu_median_ms` shows the machine was busy. `min_ms` is the least
    disturbed run.
    """

    median_ms: float
    p25_ms: float
    p75_ms: float
    iqr_ms: float
    min_ms: float
    runs: int
    batch_size: int
    input_shape: tuple
    device: str
    threads: int
    wall_s: float
    cpu_median_ms: float | None = None

    @property
    def relative_iqr(self) -> float:
        """IQR / median: the run-to-run spread as a fraction of the latency."""
        return self.iqr_ms / self.median_ms if self.median_ms > 0 else float("inf")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["input_shape"] = list(self.input_shape)
        return d


def measure_module(module, input_shape: Sequence[int], config: MeasureConfig) -> Measurement:
    """Time `module` on a random input of shape ``(config.batch_size, *input_shape)``.

    `config.warmup` untimed runs, then `config.runs` timed ones (`config.rounds` only matters
    across architectures, see `measure_archs`). The module is put in eval mode (its previous mode is
    restored afterwards) and moved to `config.device`. Torch's thread count is set to
    `config.threads` for the measurement and restored afterwards. On CUDA each run is bracketed by
    `torch.cuda.synchronize` so the time is that of the kernels, not of their launch.

    Raises MeasurementError when the device is unavailable or the forward pass fails.
    """
    shape = (int(config.batch_size), *map(int, input_shape))
    samples = _time_runs(module, shape, config, int(config.warmup), int(config.runs))
    return _summarise([samples], shape, config)


def _time_runs(module, shape: tuple, config: MeasureConfig, warmup: int, runs: int):
    """(wall times s, thread CPU times s, seconds spent) of `runs` forward passes after `warmup`."""
    import torch

    device = _torch_device(config.device)
    was_training = module.training
    old_threads = torch.get_num_threads()
    gc_was_enabled = gc.isenabled()
    try:
        torch.set_num_threads(int(config.threads))
        module = module.to(device).eval()
        x = torch.randn(shape, generator=torch.Generator().manual_seed(0)).to(device)
        sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
        times, cpu_times = np.empty(runs), np.empty(runs)
        start_wall = time.perf_counter()
        with torch.inference_mode():
            for _ in range(warmup):
                module(x)
            sync()
            # A collection in the middle of a run would be timed as the network's.
            gc.disable()
            for i in range(runs):
                c0, t0 = time.thread_time(), time.perf_counter()
                module(x)
                sync()
                times[i] = time.perf_counter() - t0
                cpu_times[i] = time.thread_time() - c0
        return times, cpu_times, time.perf_counter() - start_wall
    except MeasurementError:
        raise
    except Exception as exc:  # the module's own failure: name it, keep the cause chained
        raise MeasurementError(f"forward pass failed on input {shape} ({config.device}): "
                               f"{type(exc).__name__}: {exc}") from exc
    finally:
        if gc_was_enabled:
            gc.enable()
        torch.set_num_threads(old_threads)
        module.train(was_training)


def _summarise(parts, shape: tuple, config: MeasureConfig) -> Measurement:
    """One Measurement from the (times, cpu_times, seconds) of one or more passes over an arch."""
    ms = np.concatenate([p[0] for p in parts]) * 1e3
    p25, median, p75 = np.percentile(ms, [25, 50, 75])
    # Only with one CPU thread is the calling thread's CPU time the whole forward pass.
    cpu_ms = (float(np.median(np.concatenate([p[1] for p in parts])) * 1e3)
              if config.device == "cpu" and int(config.threads) == 1 else None)
    return Measurement(median_ms=float(median), p25_ms=float(p25), p75_ms=float(p75), iqr_ms=float(p75 - p25),
                       min_ms=float(ms.min()), runs=len(ms), batch_size=shape[0], input_shape=tuple(shape[1:]),
                       device=config.device, threads=int(config.threads), wall_s=float(sum(p[2] for p in parts)),
                       cpu_median_ms=cpu_ms)


def _torch_device(name: str):
    import torch

    if name == "cuda" and not torch.cuda.is_available():
        raise MeasurementError("device 'cuda' was asked for, but torch sees no CUDA GPU on this machine")
    return torch.device(name)


def build_or_raise(space, arch: str):
    """`space.build_module(arch)`, with a MeasurementError naming the arch when it fails or gives
    something other than a torch module (which would fail later, as an AttributeError)."""
    import torch

    try:
        module = space.build_module(arch)
    except Exception as exc:
        raise MeasurementError(f"cannot build {arch!r} in search space {space.name!r}: "
                               f"{type(exc).__name__}: {exc}") from exc
    if not isinstance(module, torch.nn.Module):
        raise MeasurementError(f"cannot build {arch!r} in search space {space.name!r}: build_module returned "
                               f"{type(module).__name__}, not a torch.nn.Module")
    return module


def measure_archs(space, archs: Sequence[str], config: MeasureConfig, progress: bool = True) -> dict[str, Measurement]:
    """Measure each architecture of `space`, one at a time, in the given order.

    One at a time on purpose: two measurements sharing the CPU would each time the other's load.
    With ``config.rounds > 1`` the timed runs of every arch are split into that many passes over
    all the archs (each pass warming each arch up again, unless `warmup` is 0), so that a slow
    spell of a shared machine falls on all of them alike instead of on whichever was being measured
    then; the modules are then all built first. Duplicates are measured once. A progress bar goes
    to stderr when `progress` is true.

    Raises MeasurementError naming the architecture when one fails to build or run.
    """
    from tqdm import tqdm

    unique = list(dict.fromkeys(archs))
    _torch_device(config.device)  # fail before building anything
    shape = (int(config.batch_size), *map(int, space.input_shape))
    rounds = min(int(config.rounds), int(config.runs))
    if rounds == 1:
        out: dict[str, Measurement] = {}
        for arch in tqdm(unique, desc=f"measuring on {config.device}", unit="arch", disable=not progress,
                         file=sys.stderr, leave=False):
            module = build_or_raise(space, arch)
            try:
                out[arch] = measure_module(module, space.input_shape, config)
            except MeasurementError as exc:
                raise MeasurementError(f"{arch}: {exc}") from exc
        return out

    modules = {arch: build_or_raise(space, arch) for arch in unique}
    runs = [int(config.runs) // rounds + (r < int(config.runs) % rounds) for r in range(rounds)]
    warmup = config.warmup_per_round
    parts: dict[str, list] = {arch: [] for arch in unique}
    with tqdm(total=rounds * len(unique), desc=f"measuring on {config.device} ({rounds} rounds)", unit="arch",
              disable=not progress, file=sys.stderr, leave=False) as bar:
        for n in runs:
            for arch, module in modules.items():
                try:
                    parts[arch].append(_time_runs(module, shape, config, warmup, n))
                except MeasurementError as exc:
                    raise MeasurementError(f"{arch}: {exc}") from exc
                bar.update()
    return {arch: _summarise(parts[arch], shape, config) for arch in unique}


def busy_warning(measurements: Sequence[Measurement], max_relative_iqr: float = 0.2) -> str | None:
    """A one-line warning when the runs were too spread out to trust the medians, else None.

    The test is the median arch's IQR / median; above `max_relative_iqr` (20%) the timings are
    noisy (an idle machine gives a few %). The load average says whether a busy CPU may be the
    cause: a core's worth beyond the threads measuring says it may; less says the noise is the
    machine's own, as on an H100 VM whose runs spread 31% at a load average of 0.8 on 16 cores.
    """
    if not measurements:
        return None
    spread = float(np.median([m.relative_iqr for m in measurements]))
    if spread <= max_relative_iqr:
        return None
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    # A GPU's kernels are launched by one CPU thread.
    ours = max(m.threads if m.device == "cpu" else 1 for m in measurements)
    head = (f"the runs were spread out (IQR {100 * spread:.0f}% of the median at the median arch; load average "
            f"{load:.1f} on {os.cpu_count()} cores)")
    if np.isnan(load):
        return f"{head}: other jobs or the machine itself made these latencies noisy; re-measure when it is idle"
    if load - ours >= 1:
        # Not always other jobs: the same VM read 6.7 while measuring FBNet alone (this process's
        # own threads, building each network between runs, count too).
        return (f"{head}: the CPU was busy beyond the thread measuring (other jobs, or this process's own "
                "threads), so these latencies are higher and noisier than on an idle machine; re-measure when "
                "it is idle")
    return (f"{head}: no other jobs were running, so the noise is this machine's own (on a virtual machine, its "
            "neighbours or its clock speed); treat these medians as rough")


def machine_description() -> dict:
    """What this machine is: CPU model, cores, GPU (if torch sees one), torch version, OS.

    Keys: cpu_model, logical_cores, physical_cores (None where unknown), gpu_name (None without
    CUDA), torch_version, cuda_version, os, python. The CPU model is the kernel's 'model name'
    (a VM may report a generic one, e.g. 'AMD EPYC'), else what `platform` says.
    """
    import torch

    cpu_model, physical = _cpuinfo()
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {
        "cpu_model": cpu_model or platform.processor() or platform.machine() or "unknown",
        "logical_cores": os.cpu_count(),
        "physical_cores": physical,
        "gpu_name": gpu,
        "torch_version": torch.__version__,
        "cuda_version": torch.version.cuda,
        "os": platform.platform(),
        "python": platform.python_version(),
    }


def _cpuinfo() -> tuple[str | None, int | None]:
    """('model name', number of distinct (physical id, core id)) from /proc/cpuinfo, where Linux."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return None, None
    model, cores, phys = None, set(), None
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key, value = key.strip(), value.strip()
        if key == "model name" and model is None:
            model = value
        elif key == "physical id":
            phys = value
        elif key == "core id":
            cores.add((phys, value))
    return model, (len(cores) or None)
