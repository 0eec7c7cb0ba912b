"""Shared builders for the operator tests: a valid policy and its parsed spec."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from adaptrec.operator.policy import PolicySpec, parse_policy_spec

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "policy.yaml"


def example_policy(**spec_overrides: Any) -> dict[str, Any]:
    """Return examples/policy.yaml as a dict with metadata a cluster would add."""
    policy = yaml.safe_load(EXAMPLE.read_text())
    policy["metadata"].update(
        namespace="recs",
        uid="0f4c2a9e-5b7d-4e21-9c3a-7d1e2f3a4b5c",
        generation=1,
        resourceVersion="100",
    )
    for key, value in spec_overrides.items():
        policy["spec"][key] = value
    return policy


def with_rollout(policy: dict[str, Any], **fields: Any) -> dict[str, Any]:
    policy = copy.deepcopy(policy)
    policy["spec"]["rollout"].update(fields)
    return policy


@pytest.fixture
def policy() -> dict[str, Any]:
    return example_policy()


@pytest.fixture
def spec(policy: dict[str, Any]) -> PolicySpec:
    return parse_policy_spec(policy["spec"], policy["metadata"]["namespace"])


# The cluster tier's fixtures (binaries, control_plane, crds, namespace) are
# shared with tests/cluster; importing them here makes them visible to this
# folder's tests.
from tests.cluster.conftest import binaries, control_plane, crds, namespace  # noqa: E402, F401
