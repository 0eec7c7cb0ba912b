"""RolloutSource: initial sets, reloads on change, invalid files, ConfigMap swaps."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from adaptrec.model_server.rollouts import COLD_START_VERSION, RolloutSource
from adaptrec.rollout import Rollout, RolloutError
from tests.model_server.conftest import SPACE, hyperparams, write_rollout


def reload_errors(model: str) -> float:
    value = REGISTRY.get_sample_value(
        "adaptrec_rollout_reload_errors_total", {"model": model}
    )
    return value or 0.0


class FakeClock:
    """A settable monotonic clock, so the feedback window needs no sleeping."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_no_file_serves_initial_set() -> None:
    source = RolloutSource("rollout-initial", SPACE)

    assert source.load() is True
    assert source.active is not None
    assert source.active.rollout.stable == SPACE.initial()
    assert source.active.rollout.candidate is None
    assert source.poll() is False


def test_file_applied_on_load(tmp_path: Path) -> None:
    path = tmp_path / "rollout.json"
    stable, candidate = hyperparams(alpha=0.7), hyperparams(alpha=0.3)
    write_rollout(path, Rollout(stable, candidate, 25))
    source = RolloutSource("rollout-load", SPACE, path)

    assert source.load() is True
    assert source.active is not None
    assert source.active.rollout.stable == stable
    assert source.active.rollout.candidate == candidate
    assert source.active.rollout.canary_percent == 25
    assert source.active.source == str(path)


def test_missing_file_not_ready_until_written(tmp_path: Path) -> None:
    path = tmp_path / "rollout.json"
    source = RolloutSource("rollout-missing", SPACE, path)
    errors_before = reload_errors("rollout-missing")

    assert source.load() is False
    assert source.active is None
    assert reload_errors("rollout-missing") == errors_before + 1
    # Polling the same missing file again is neither logged nor counted twice.
    assert source.poll() is False
    assert reload_errors("rollout-missing") == errors_before + 1

    write_rollout(path, Rollout(hyperparams(alpha=0.9)))
    assert source.poll() is True
    assert source.active is not None
    assert source.active.rollout.stable == hyperparams(alpha=0.9)


def test_changed_file_reloaded(tmp_path: Path) -> None:
    path = tmp_path / "rollout.json"
    write_rollout(path, Rollout(hyperparams(alpha=0.5)))
    source = RolloutSource("rollout-change", SPACE, path)
    source.load()

    assert source.poll() is False
    write_rollout(path, Rollout(hyperparams(alpha=0.5), hyperparams(alpha=0.8), 40))
    assert source.poll() is True
    assert source.active is not None
    assert source.active.rollout.candidate == hyperparams(alpha=0.8)
    assert source.active.rollout.canary_percent == 40
    assert source.poll() is False


@pytest.mark.parametrize(
    "content",
    [
        "{not json",
        "[]",
        '{"stable": null}',
        '{"stable": {"values": {"alpha": 0.5}}}',
        json.dumps(
            {
                "stable": {"values": {**SPACE.initial().values_dict, "alpha": 7.0}},
                "canaryPercent": 0,
            }
        ),
        json.dumps({"stable": SPACE.initial().to_json_dict(), "canaryPercent": 30}),
    ],
    ids=[
        "not-json",
        "not-object",
        "null-stable",
        "missing-values",
        "out-of-bounds",
        "canary-without-candidate",
    ],
)
def test_invalid_file_keeps_old_sets(
    tmp_path: Path, content: str, request: pytest.FixtureRequest
) -> None:
    path = tmp_path / "rollout.json"
    good = Rollout(hyperparams(alpha=0.6))
    write_rollout(path, good)
    model = request.node.name
    source = RolloutSource(model, SPACE, path)
    source.load()
    errors_before = reload_errors(model)

    path.write_text(content)
    assert source.poll() is False
    assert source.active is not None
    assert source.active.rollout == good
    assert reload_errors(model) == errors_before + 1
    # The same bad content is counted once, not once per poll.
    assert source.poll() is False
    assert reload_errors(model) == errors_before + 1

    write_rollout(path, Rollout(hyperparams(alpha=0.4)))
    assert source.poll() is True
    assert source.active.rollout.stable == hyperparams(alpha=0.4)


def test_configmap_symlink_swap_reloaded(tmp_path: Path) -> None:
    # Kubernetes mounts a ConfigMap key as key -> ..data/key, with ..data a symlink
    # to a timestamped directory, and updates it by renaming a new ..data symlink
    # over the old one.
    mount = tmp_path / "mount"
    mount.mkdir()
    first = mount / "..2026_01_01_00_00_00.1"
    first.mkdir()
    write_rollout(first / "rollout.json", Rollout(hyperparams(alpha=0.5)))
    (mount / "..data").symlink_to(first.name)
    (mount / "rollout.json").symlink_to("..data/rollout.json")
    source = RolloutSource("rollout-configmap", SPACE, mount / "rollout.json")
    source.load()

    second = mount / "..2026_01_01_00_01_00.2"
    second.mkdir()
    write_rollout(
        second / "rollout.json",
        Rollout(hyperparams(alpha=0.5), hyperparams(w_kg=0.6), 50),
    )
    (mount / "..data_tmp").symlink_to(second.name)
    os.replace(mount / "..data_tmp", mount / "..data")

    assert source.poll() is True
    assert source.active is not None
    assert source.active.rollout.candidate == hyperparams(w_kg=0.6)


def test_retired_version_accepted_within_window(tmp_path: Path) -> None:
    path = tmp_path / "rollout.json"
    old, new = hyperparams(alpha=0.5), hyperparams(alpha=0.6)
    write_rollout(path, Rollout(old))
    clock = FakeClock()
    source = RolloutSource(
        "rollout-window", SPACE, path, feedback_window_s=60.0, clock=clock
    )
    source.load()

    write_rollout(path, Rollout(new))
    source.poll()
    clock.now += 59.0
    assert source.is_recent_version(old.version) is True
    assert source.is_recent_version(new.version) is True
    clock.now += 2.0
    assert source.is_recent_version(old.version) is False
    assert source.is_recent_version(new.version) is True
    assert source.is_recent_version(COLD_START_VERSION) is True
    assert source.is_recent_version("0123456789ab") is False


def test_rollout_metrics_follow_active_sets(tmp_path: Path) -> None:
    path = tmp_path / "rollout.json"
    stable, candidate = hyperparams(alpha=0.5), hyperparams(alpha=0.2)
    write_rollout(path, Rollout(stable, candidate, 10))
    source = RolloutSource("rollout-metrics", SPACE, path)
    source.load()

    def info(role: str, version: str) -> float | None:
        return REGISTRY.get_sample_value(
            "adaptrec_rollout_info",
            {"model": "rollout-metrics", "role": role, "version": version},
        )

    assert info("stable", stable.version) == 1.0
    assert info("candidate", candidate.version) == 1.0
    canary = REGISTRY.get_sample_value(
        "adaptrec_canary_percent", {"model": "rollout-metrics"}
    )
    assert canary == 10.0
    # Series for a live version exist from the start, at zero.
    served = REGISTRY.get_sample_value(
        "adaptrec_recommendations_total",
        {"model": "rollout-metrics", "version": candidate.version},
    )
    assert served == 0.0

    write_rollout(path, Rollout(candidate))
    source.poll()
    assert info("stable", candidate.version) == 1.0
    assert info("stable", stable.version) is None
    assert info("candidate", candidate.version) is None


def test_environment_set_served_without_file(monkeypatch) -> None:
    chosen = SPACE.validate({**SPACE.initial().values_dict, "alpha": 0.9})
    monkeypatch.setenv("ADAPTREC_HYPERPARAMS", json.dumps(chosen.to_json_dict()))
    source = RolloutSource("rollout-env", SPACE)

    assert source.load() is True
    assert source.active is not None
    assert source.active.rollout.stable == chosen


def test_invalid_environment_set_rejected(monkeypatch) -> None:
    monkeypatch.setenv("ADAPTREC_HYPERPARAMS", '{"values": {"alpha": 7}}')
    source = RolloutSource("rollout-env-bad", SPACE)

    with pytest.raises(RolloutError) as raised:
        source.load()
    assert "ADAPTREC_HYPERPARAMS" in str(raised.value)
    assert "'alpha'" in str(raised.value)
