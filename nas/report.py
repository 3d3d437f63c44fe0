"""Results of a search on disk: pareto.csv, evaluated.csv, pareto.png and summary.json, written atomically."""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import time
import uuid
from pathlib import Path

import numpy as np
import pandas as pd

from nas.config import UsageError
from nas.evaluator import checked_values
from nas.metrics import pareto_mask, true_hv_ratio, regret_pp
from predictor.metrics import error_bound_accuracy


class OutputDir:
    """A results folder that appears under its final name only once complete.

    Written as a hidden temporary folder next to the final one, then renamed, so that an interrupted
    run leaves nothing half-written. Constructing it checks that the folder can be made, so that an
    unwritable `--out` fails before any search work; the folder itself is made only by `open`, when
    the results are written: a run killed outright (SIGKILL, or Ray ending a driver that lost its
    cluster) runs no clean-up, and would leave it behind.
    """

    def __init__(self, parent: Path, name: str):
        self.parent = Path(parent)
        # The folders this run creates, deepest first: a failed run removes them again if empty.
        self._created = [p for p in [self.parent, *self.parent.parents] if not p.exists()]
        if self.parent.exists() and not self.parent.is_dir():  # mkdir would say only "File exists"
            raise UsageError(f"cannot write results under {self.parent}: it is a file, not a folder; give --out a "
                             "folder")
        self.tmp = self.parent / f".{name}.{uuid.uuid4().hex[:8]}.tmp"
        self.final = self.parent / name
        self.open()
        self.discard()

    def open(self) -> Path:
        """Make the temporary folder and return it."""
        for _ in range(5):
            try:
                self.parent.mkdir(parents=True, exist_ok=True)
                # os.mkdir, not tempfile.mkdtemp: mkdtemp makes the folder private (0700), and the results
                # would stay unreadable to the user's group after the rename; mkdir follows the umask.
                self.tmp.mkdir(exist_ok=True)
                return self.tmp
            except FileNotFoundError as exc:
                # Another run started beside this one removed the parent it had made (its `discard`)
                # between the two mkdirs: make it again.
                error = exc
            except OSError as exc:
                error = exc
                break
        raise UsageError(f"cannot write results under {self.parent}: {error.strerror or error}") from None

    def commit(self) -> Path:
        """Rename the temporary folder to the final name, or to name-2, name-3, ... where a run of the
        same second has it."""
        final, n = self.final, 1
        while True:
            if not final.exists():
                try:
                    os.rename(self.tmp, final)
                    return final
                except OSError as exc:
                    # Another run took the name between the check and the rename: a folder there now
                    # holds its results, and the rename refuses a folder that is not empty.
                    if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                        raise
            n += 1
            final = self.parent / f"{self.final.name}-{n}"

    def discard(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)
        for folder in self._created:
            try:
                folder.rmdir()  # only when empty: another run's results are never touched
            except OSError:
                break


def run_name(space: str, device: str) -> str:
    """Folder name of a run; a user space given as `path/file.py:Class` is named by its class."""
    # Each part at most 100 characters: the folder's name is made before the device is looked up, and
    # a 300-character --device was refused as "cannot write results: File name too long".
    label = "-".join(re.sub(r"[^A-Za-z0-9._]+", "_", part.rsplit(":", 1)[-1])[:100] for part in (space, device))
    return f"{label}-{time.strftime('%Y%m%d-%H%M%S')}"


def covers_space(truth: pd.Series, space) -> bool:
    """Whether the target's table (latency by arch) holds every architecture of `space`: only then is
    its front the space's true front, and hypervolume and regret against it mean what they say."""
    all_archs = space.all_archs()
    return all_archs is not None and len(truth) == len(all_archs) and bool(truth.index.isin(all_archs).all())


def truth_metrics(result) -> dict:
    """Quality of the search against the target's full table, where it has one (else empty)."""
    truth = result.target.true_latency_ms
    if truth is None:
        return {}
    lat_col = "predicted_latency_ms"
    ev = result.evaluated
    true_lat = truth.reindex(ev["arch_str"]).to_numpy()
    known = ~np.isnan(true_lat)
    if not known.any():
        return {"n_with_table_latency": 0}
    out = {"pred_within_10pct": float(error_bound_accuracy(ev[lat_col].to_numpy()[known], true_lat[known], 0.10)),
           "n_with_table_latency": int(known.sum())}
    if result.quality.name == "accuracy" and covers_space(truth, result.space):
        all_acc = checked_values(result.quality, list(truth.index))
        all_lat = truth.to_numpy()
        front_acc = result.front["accuracy"].to_numpy()
        front_lat = truth.reindex(result.front["arch_str"]).to_numpy()
        out["true_hv_ratio"] = true_hv_ratio(front_acc, front_lat, all_acc, all_lat)
        out["regret_pp"] = regret_pp(front_acc, front_lat, all_acc, all_lat)
    return out


def verify_metrics(verify: pd.DataFrame) -> dict:
    from predictor.metrics import spearman

    pred, meas = verify["predicted_latency_ms"].to_numpy(), verify["measured_latency_ms"].to_numpy()
    return {"n": len(verify), "within_10pct": float(error_bound_accuracy(pred, meas, 0.10)),
            "spearman": float(spearman(pred, meas)) if len(verify) > 1 else None}


def speedup_estimate(result) -> dict:
    """Time measuring every unique evaluated candidate on the target would take / this run's wall time."""
    n = len(result.evaluated)
    if result.measure_s_per_sample is not None:
        total = result.measure_s_per_sample * n
        method = ("measured: wall time per target sample measured here in this run (module build, warm-up "
                  f"and timed runs) x {n} unique candidates")
    else:
        from profiler.measure import MeasureConfig

        protocol = MeasureConfig()
        truth = result.target.true_latency_ms
        lat = result.evaluated["predicted_latency_ms"].to_numpy()
        source = "predicted"
        if truth is not None:
            # Table latency where the table has the candidate (it may hold only a sample of the space).
            table = truth.reindex(result.evaluated["arch_str"]).to_numpy()
            lat = np.where(np.isnan(table), lat, table)
            source = "table (else predicted)"
        runs = protocol.warmup + protocol.runs
        total = float(np.sum(lat)) / 1000.0 * runs
        # The target's samples were not measured in this run (a table look-up, or a profile made
        # earlier), but a user measures them on the device: so the run pays the same estimate for
        # them. Without it `--samples 2000` over 100 candidates claimed a 6x speedup.
        samples_s = float(sum(result.samples.values())) / 1000.0 * runs
        method = (f"estimated: the profiler's protocol ({protocol.warmup} warm-up + {protocol.runs} timed runs) x "
                  f"each unique candidate's {source} latency, summed, against this run's wall time plus the same "
                  f"estimate for measuring its {len(result.samples)} samples on the target; module build and "
                  "transfer to the device are not counted, so this understates the cost of measuring")
        return {"speedup": total / (result.wall_s + samples_s), "speedup_method": method, "measure_all_s": total,
                "measure_samples_s": samples_s}
    return {"speedup": total / result.wall_s, "speedup_method": method, "measure_all_s": total}


def plot_front(result, path: Path, verify: pd.DataFrame | None = None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    q = result.quality
    panels = 2 if verify is not None else 1
    fig, axes = plt.subplots(1, panels, figsize=(7 * panels, 5), squeeze=False)
    ax = axes[0, 0]
    ev, front = result.evaluated, result.front
    ax.scatter(ev["predicted_latency_ms"], ev[q.name], s=6, c="0.8", label=f"evaluated ({len(ev)}), predicted latency")
    ax.step(front["predicted_latency_ms"], front[q.name], where="post", color="C0", marker="o", ms=4,
            label="found front, predicted latency")
    truth = result.target.true_latency_ms
    title = f"{result.space.name} on {result.target.name}"
    if truth is not None:
        front_true = truth.reindex(front["arch_str"]).to_numpy()
        n_in = int(np.isfinite(front_true).sum())
        # A table may hold only a sample of a large space (FBNet's: 5,000 archs), so the front can
        # miss it wholly or in part; say so rather than draw an empty or silently partial series.
        if n_in:
            part = "" if n_in == len(front) else f" ({n_in} of {len(front)} in the table)"
            ax.scatter(front_true, front[q.name], marker="x", color="C3", s=25,
                       label=f"found front, table latency{part}")
        else:
            title += f"\nno found-front architecture is in {result.target.name}'s table"
        all_archs = list(truth.index)
        if q.name == "accuracy" and result.space.all_archs() is not None:
            all_acc = checked_values(q, all_archs)
            all_lat = truth.to_numpy()
            m = pareto_mask(np.column_stack([-all_acc, all_lat]))
            order = np.argsort(all_lat[m])
            # A user's table of a few hundred archs has a front too, but not the space's.
            whole = covers_space(truth, result.space)
            ax.step(all_lat[m][order], all_acc[m][order], where="post", color="k", lw=1, alpha=0.7,
                    label="true front of the whole space" if whole else
                    f"true front of the {len(truth)} architectures in the table")
    ax.set_xlabel(f"latency on {result.target.name} (ms)")
    ax.set_ylabel(q.label)
    ax.set_title(title)
    ax.legend(loc="lower right", fontsize=8)
    ax.grid(alpha=0.3)
    if verify is not None:
        ax2 = axes[0, 1]
        # Above the ±10% band: drawn under it, every point inside the band was hidden.
        ax2.scatter(verify["measured_latency_ms"], verify["predicted_latency_ms"], color="C2", zorder=3,
                    label=f"front architectures ({len(verify)})")
        lo = float(min(verify.min(numeric_only=True)[["measured_latency_ms", "predicted_latency_ms"]]))
        hi = float(max(verify.max(numeric_only=True)[["measured_latency_ms", "predicted_latency_ms"]]))
        xs = np.linspace(lo, hi, 10)
        ax2.plot(xs, xs, "k-", lw=1)
        ax2.fill_between(xs, xs * 0.9, xs * 1.1, color="0.9", label="±10%", zorder=0)
        ax2.set_xlabel("measured latency here (ms)")
        ax2.set_ylabel("predicted latency (ms)")
        ax2.set_title("front re-measured on this machine")
        ax2.legend(loc="upper left", fontsize=8)
        ax2.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_results(result, out: OutputDir, extra_summary: dict | None = None,
                  verify: pd.DataFrame | None = None) -> tuple[Path, dict]:
    """Write every file into the temporary folder, then move it to its final name."""
    truth = result.target.true_latency_ms
    front = result.front.copy()
    evaluated = result.evaluated.copy()
    if truth is not None:
        front["table_latency_ms"] = truth.reindex(front["arch_str"]).to_numpy()
        evaluated["table_latency_ms"] = truth.reindex(evaluated["arch_str"]).to_numpy()
    folder = out.open()
    front.to_csv(folder / "pareto.csv", index=False)
    evaluated.to_csv(folder / "evaluated.csv", index=False)
    plot_front(result, folder / "pareto.png", verify)
    cfg = result.config
    summary = {
        "device": result.target.name,
        "device_source": result.target.source,
        "device_description": result.target.description,
        "space": result.space.name,
        "dataset": getattr(result.space, "dataset", None),
        "quality_objective": result.quality.name,
        "seed": cfg.seed,
        "pop_size": cfg.pop_size,
        "generations": cfg.generations,
        "n_evaluated": len(result.evaluated),
        "n_front": len(result.front),
        "samples_measured": len(result.samples),
        "samples": result.samples,
        "timings_s": result.timings_s,
        "runner": result.runner,
        "workers": result.workers,
        "cautions": result.cautions,
    }
    summary.update(truth_metrics(result))
    summary.update(speedup_estimate(result))
    if verify is not None:
        summary["verify"] = verify_metrics(verify)
        verify.to_csv(folder / "verify.csv", index=False)
    summary.update(extra_summary or {})
    summary["wall_s"] = result.wall_s
    (folder / "summary.json").write_text(json.dumps(summary, indent=2, default=_json_default) + "\n")
    return out.commit(), summary


def _json_default(obj):
    if isinstance(obj, (np.floating, np.integer)):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    return str(obj)
