"""Consistency of the CRD, chart and example files; needs no cluster."""

from __future__ import annotations

import filecmp

import yaml

from adaptrec.hyperparams import HyperparamSpace
from adaptrec.testing.controlplane import REPO_ROOT

CRDS = REPO_ROOT / "crds"
CHART_CRDS = REPO_ROOT / "charts" / "adaptrec" / "crds"


def test_chart_crds_match_top_level_crds() -> None:
    top_level = sorted(path.name for path in CRDS.glob("*.yaml"))
    in_chart = sorted(path.name for path in CHART_CRDS.glob("*.yaml"))

    assert in_chart == top_level
    for name in top_level:
        assert filecmp.cmp(CRDS / name, CHART_CRDS / name, shallow=False), (
            f"charts/adaptrec/crds/{name} differs from crds/{name}; copy crds/ over it"
        )


def test_example_policy_matches_default_space() -> None:
    policy = yaml.safe_load((REPO_ROOT / "examples" / "policy.yaml").read_text())
    declared = HyperparamSpace.from_dicts(policy["spec"]["hyperparameters"])

    default = HyperparamSpace.from_yaml()

    assert declared.specs == default.specs
