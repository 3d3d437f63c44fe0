"""predictor.tune: the sweep's protocol (who may be a target, what each initial set holds) and a tiny real sweep."""

from __future__ import annotations

import numpy as np
import pytest

from predictor.benchmark import UsageError, help_split, shipped_space_and_table
from predictor.maple import MapleConfig
from predictor.tune import initial_set, score_config, sweep

META_TEST = ["eyeriss", "fpga", "gold_6226", "pixel2", "raspi4", "titan_rtx_256"]


@pytest.fixture(scope="module")
def shipped():
    return shipped_space_and_table("nasbench201")


def test_validation_devices_are_helps_meta_valid(shipped):
    _, table = shipped
    assert help_split("nasbench201", "meta-valid", table.devices) == ["titanx_1", "titanx_256", "titanx_32"]


def test_initial_set_drops_target_excluded_and_near_duplicates(shipped):
    _, table = shipped
    init = initial_set(table, "titanx_256", META_TEST, 0.98)
    assert "titanx_256" not in init.devices
    assert not set(META_TEST) & set(init.devices)
    # its siblings at batch 256 correlate > 0.98 with it: they go too
    assert "titanxp_256" not in init.devices and "1080ti_256" not in init.devices
    log = np.log(table.latency_ms)
    corr = np.corrcoef(log)[table.devices.index("titanx_256")]
    kept = [table.devices.index(d) for d in init.devices]
    assert np.all(corr[kept] < 0.98)
    # above 1 keeps every non-excluded device
    assert len(initial_set(table, "titanx_256", META_TEST, 1.01).devices) == len(table.devices) - 1 - len(META_TEST)


def test_score_config_on_one_valid_device(shipped):
    space, table = shipped
    scores = score_config(space, table, ["titanx_32"], MapleConfig(), META_TEST, 0.98)
    assert set(scores) >= {"within_10pct", "spearman", "objective"}
    assert 0.0 <= scores["within_10pct"] <= 1.0 and scores["spearman"] > 0.8
    assert scores["objective"] == pytest.approx(0.5 * (scores["within_10pct"] + scores["spearman"]))


def test_score_config_leaves_the_measured_references_out(shipped):
    # The 3 references are adapted from, so scoring them would score a measurement, not a prediction
    # (the benchmark leaves them out too): the figures are those of the other architectures.
    from predictor.maple import MaplePredictor
    from predictor.metrics import latency_scores

    space, table = shipped
    scores = score_config(space, table, ["titanx_32"], MapleConfig(), META_TEST, 0.98)
    truth = table.column("titanx_32")
    model = MaplePredictor(space, MapleConfig()).fit(initial_set(table, "titanx_32", META_TEST, 0.98))
    refs = model.reference_archs()
    pred = model.adapt({a: float(truth[a]) for a in refs}).predict(list(truth.index))
    rest = ~truth.index.isin(refs)
    assert rest.sum() == len(truth) - 3
    expected = latency_scores(pred[rest], truth.to_numpy()[rest])
    assert scores["within_1pct"] == pytest.approx(expected["within_1pct"], rel=1e-9)
    assert scores["within_1pct"] != pytest.approx(latency_scores(pred, truth.to_numpy())["within_1pct"], rel=1e-9)


def test_sweep_refuses_meta_test_targets():
    with pytest.raises(UsageError, match="meta-test"):
        sweep("nasbench201", 1, 3, devices=["gold_6226"])


@pytest.mark.slow
def test_tiny_sweep_runs_through_ray_and_ranks_trials():
    rows = sweep("nasbench201", 2, 3, devices=["titanx_32"], workers=1)
    assert len(rows) == 2
    assert rows[0]["objective"] >= rows[1]["objective"]
    # the current defaults are always trial 0, so they are among the rows
    assert any(r["prior_shrinkage"] == MapleConfig().prior_shrinkage for r in rows)


def test_sweep_refuses_settings_every_trial_would_fail_on():
    # Inside Ray these only showed as "every trial failed" with a traceback, after Ray had started.
    with pytest.raises(UsageError, match="titanx_1's initial set has 0 device"):
        sweep("nasbench201", 1, 3, devices=["titanx_1"], hold_out_corr=-5)
    with pytest.raises(UsageError, match="--samples 15625 leaves nothing to predict"):
        sweep("nasbench201", 1, 15625, devices=["titanx_1"])
    # 341 of the 15,625 ignore their input and are never asked for: every trial failed in Ray
    with pytest.raises(UsageError, match="--samples 15300: a target can be asked to measure at most 15284 of "):
        sweep("nasbench201", 1, 15300, devices=["titanx_1"])


def test_cli_refuses_an_empty_device_list(capsys):
    from predictor.tune import main

    with pytest.raises(SystemExit) as exc:
        main(["--space", "nasbench201", "--devices", ","])
    assert exc.value.code == 2
    assert "--devices: names no device" in capsys.readouterr().err


@pytest.mark.parametrize("spaces", ["", ",", " , "])
def test_cli_refuses_an_empty_space_list(capsys, spaces):
    # every trial started in Ray and failed with an IndexError
    from predictor.tune import main

    with pytest.raises(SystemExit) as exc:
        main(["--space", spaces])
    assert exc.value.code == 2 and "--space: names no space" in capsys.readouterr().err


def test_cli_refuses_a_folder_for_json_before_the_sweep(tmp_path, capsys):
    from predictor.tune import main

    assert main(["--space", "nasbench201", "--json", str(tmp_path)]) == 2
    assert capsys.readouterr().err.strip() == f"error: cannot write {tmp_path}: it is a folder; give a file name"
    # a folder that refuses new files: a PermissionError traceback after the whole sweep
    assert main(["--space", "nasbench201", "--json", "/proc/sweep.json"]) == 2
    assert capsys.readouterr().err.startswith("error: cannot write /proc/sweep.json: ")


@pytest.mark.slow
def test_ctrl_c_stops_the_sweep_cleanly_and_writes_nothing(tmp_path):
    # Ray Tune catches Ctrl-C and returns the trials cut short: main used to end in a KeyError traceback.
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    out = tmp_path / "sweep.json"
    proc = subprocess.Popen([sys.executable, "-m", "predictor.tune", "--space", "nasbench201", "--devices",
                             "titanx_1", "--num-samples", "50", "--workers", "1", "--json", str(out)],
                            cwd=Path(__file__).resolve().parents[1], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    lines, deadline = [], time.monotonic() + 240
    for line in proc.stdout:  # Ctrl-C once the sweep has started
        lines.append(line)
        if "Trial status:" in line or time.monotonic() > deadline:
            break
    proc.send_signal(signal.SIGINT)
    rest, _ = proc.communicate(timeout=240)
    text = "".join(lines) + rest
    assert proc.returncode == 130, text[-2000:]
    assert text.strip().splitlines()[-1].startswith("interrupted after ")
    assert "Traceback" not in text and not out.exists()
    # Ray's notices about a private Ray and a temporary folder that are gone: nothing to act on
    assert "Tuner.restore" not in text and "Token authentication is enabled" not in text
