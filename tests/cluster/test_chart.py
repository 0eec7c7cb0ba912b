"""The Helm chart: lint, rendering, values schema, and an install with RBAC checks."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from adaptrec.testing.controlplane import REPO_ROOT, ControlPlane

pytestmark = pytest.mark.cluster

CHART = REPO_ROOT / "charts" / "adaptrec"
RELEASE = "adaptrec"


def helm(binaries: dict[str, Path], *args: str) -> subprocess.CompletedProcess[str]:
    """Run helm without a cluster (lint and template need none)."""
    return subprocess.run(
        [str(binaries["helm"]), *args], capture_output=True, text=True, check=False
    )


def render(binaries: dict[str, Path], *args: str) -> list[dict[str, Any]]:
    """Render the chart and return its manifests (CRDs excluded)."""
    result = helm(
        binaries, "template", RELEASE, str(CHART), "--namespace", "ops", *args
    )
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def find(manifests: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [doc for doc in manifests if doc["kind"] == kind]


def resources_of(role: dict[str, Any]) -> set[str]:
    return {resource for rule in role["rules"] for resource in rule["resources"]}


def test_chart_lint_clean(binaries: dict[str, Path]) -> None:
    result = helm(binaries, "lint", "--strict", str(CHART))

    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 chart(s) failed" in result.stdout


def test_template_cluster_wide_mode(binaries: dict[str, Path]) -> None:
    manifests = render(binaries)

    assert find(manifests, "Role") == []
    (cluster_role,) = find(manifests, "ClusterRole")
    assert {"namespaces", "customresourcedefinitions", "jobs"} <= resources_of(
        cluster_role
    )
    (deployment,) = find(manifests, "Deployment")
    args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[:2] == ["operator", "--standalone"]
    assert "--all-namespaces" in args


def test_template_namespaced_mode(binaries: dict[str, Path]) -> None:
    manifests = render(binaries, "--set", "watchNamespace=recommenders")

    (role,) = find(manifests, "Role")
    assert role["metadata"]["namespace"] == "recommenders"
    assert "jobs" in resources_of(role)
    (binding,) = find(manifests, "RoleBinding")
    assert binding["metadata"]["namespace"] == "recommenders"
    assert binding["subjects"][0]["namespace"] == "ops"
    # Only kopf's CRD lookup stays cluster-wide, and namespaces are not listed.
    (cluster_role,) = find(manifests, "ClusterRole")
    assert resources_of(cluster_role) == {"customresourcedefinitions"}
    assert {verb for rule in cluster_role["rules"] for verb in rule["verbs"]} == {
        "list",
        "watch",
    }
    (deployment,) = find(manifests, "Deployment")
    args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--namespace=recommenders" in args
    assert "--all-namespaces" not in args
    training = [
        account
        for account in find(manifests, "ServiceAccount")
        if account["metadata"]["name"].endswith("-training")
    ]
    assert training[0]["metadata"]["namespace"] == "recommenders"


def test_template_monitoring_enabled(binaries: dict[str, Path]) -> None:
    manifests = render(
        binaries,
        "--set", "monitoring.operator.podMonitor.enabled=true",
        "--set", "monitoring.modelServer.podMonitor.enabled=true",
        "--set", "monitoring.dashboard.metrics.clicks=my_clicks_total",
    )  # fmt: skip

    pod_monitors = find(manifests, "PodMonitor")
    assert len(pod_monitors) == 2
    (dashboard,) = find(manifests, "ConfigMap")
    panels = json.loads(dashboard["data"]["adaptrec.json"])["panels"]
    expressions = " ".join(target["expr"] for p in panels for target in p["targets"])
    assert "my_clicks_total" in expressions
    assert "__" not in expressions.replace("$__", "")


def test_template_monitoring_off_by_default(binaries: dict[str, Path]) -> None:
    manifests = render(binaries)

    assert find(manifests, "PodMonitor") == []
    assert len(find(manifests, "ConfigMap")) == 1


@pytest.mark.parametrize(
    ("option", "field"),
    [
        pytest.param("operator.healthPort=http", "healthPort", id="port-string"),
        pytest.param("watchNamespace=5", "watchNamespace", id="namespace-number"),
        pytest.param("rbac.create=maybe", "create", id="flag-string"),
        pytest.param("image.pullPolicy=Sometimes", "pullPolicy", id="enum-value"),
        pytest.param("operator.replicas=2", "replicas", id="unknown-value"),
    ],
)
def test_values_schema_rejects_wrong_value(
    binaries: dict[str, Path], option: str, field: str
) -> None:
    result = helm(binaries, "template", RELEASE, str(CHART), "--set", option)

    assert result.returncode != 0
    assert "values don't meet the specifications of the schema" in result.stderr
    assert field in result.stderr


@pytest.fixture(scope="module")
def release(crds: ControlPlane) -> Iterator[str]:
    """The chart installed in cluster-wide mode; returns the release namespace."""
    namespace = crds.create_namespace("adaptrec")
    crds.helm("install", RELEASE, str(CHART), "--namespace", namespace)
    yield namespace
    crds.helm("uninstall", RELEASE, "--namespace", namespace)
    crds.kubectl("delete", "namespace", namespace, "--wait=false")


def test_install_creates_objects(crds: ControlPlane, release: str) -> None:
    listed = crds.kubectl(
        "get", "-n", release, "-o", "json",
        "deployment/adaptrec-operator",
        "serviceaccount/adaptrec-operator",
        "serviceaccount/adaptrec-training",
        "configmap/adaptrec-dashboard",
        "clusterrole/adaptrec-operator",
        "clusterrolebinding/adaptrec-operator",
        "crd/hyperparampolicies.adaptrec.io",
    ).stdout  # fmt: skip
    objects = {item["kind"]: item for item in json.loads(listed)["items"]}

    pod = objects["Deployment"]["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["image"] == "adaptrec:0.1.0"
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/healthz"
    assert "--liveness=http://0.0.0.0:8080/healthz" in container["args"]
    assert container["resources"]["requests"]["cpu"] == "100m"
    training = [
        item
        for item in json.loads(listed)["items"]
        if item["metadata"]["name"] == "adaptrec-training"
    ]
    assert training[0]["automountServiceAccountToken"] is False
    assert objects["ClusterRoleBinding"]["subjects"][0]["namespace"] == release
    status = helm_status(crds, release)
    assert status["info"]["status"] == "deployed"


def helm_status(plane: ControlPlane, namespace: str) -> dict[str, Any]:
    output = plane.helm("status", RELEASE, "--namespace", namespace, "-o", "json")
    return json.loads(output.stdout)


def can_i(
    plane: ControlPlane, account: str, verb: str, resource: str, *scope: str
) -> bool:
    """Ask the API server whether ``account`` (namespace:name) may do ``verb``."""
    result = plane.kubectl(
        "auth", "can-i", verb, resource, *scope,
        f"--as=system:serviceaccount:{account}", check=False,
    )  # fmt: skip
    answer = result.stdout.strip()
    assert answer in ("yes", "no"), result.stderr
    return answer == "yes"


# The operator's rights, as (verb, resource, extra kubectl arguments).
OPERATOR_NEEDS = [
    (verb, "hyperparampolicies.adaptrec.io", ())
    for verb in ("get", "list", "watch", "patch", "update")
] + [
    (verb, "hyperparampolicies.adaptrec.io", ("--subresource=status",))
    for verb in ("get", "patch", "update")
] + [
    ("update", "hyperparampolicies.adaptrec.io", ("--subresource=finalizers",)),
] + [
    (verb, "jobs.batch", ()) for verb in ("create", "get", "list", "watch", "delete")
] + [
    (verb, "pods", ()) for verb in ("get", "list", "watch")
] + [
    (verb, "services", ()) for verb in ("get", "create")
] + [
    (verb, "configmaps", ())
    for verb in ("get", "list", "watch", "create", "patch", "update")
] + [
    (verb, "inferenceservices.serving.kserve.io", ())
    for verb in ("get", "list", "watch", "patch")
] + [
    (verb, resource, ())
    for verb in ("create", "patch")
    for resource in ("events", "events.events.k8s.io")
] + [
    (verb, "customresourcedefinitions.apiextensions.k8s.io", ())
    for verb in ("list", "watch")
] + [
    (verb, "namespaces", ()) for verb in ("list", "watch")
]  # fmt: skip

# Rights the operator must not have.
OPERATOR_FORBIDDEN = [
    ("get", "secrets"),
    ("list", "secrets"),
    ("create", "hyperparampolicies.adaptrec.io"),
    ("delete", "hyperparampolicies.adaptrec.io"),
    ("update", "jobs.batch"),
    ("patch", "jobs.batch"),
    ("create", "pods"),
    ("delete", "pods"),
    ("create", "pods/exec"),
    ("delete", "configmaps"),
    ("delete", "services"),
    ("patch", "services"),
    ("create", "inferenceservices.serving.kserve.io"),
    ("delete", "inferenceservices.serving.kserve.io"),
    ("update", "inferenceservices.serving.kserve.io"),
    ("create", "deployments.apps"),
    ("create", "serviceaccounts"),
    ("create", "serviceaccounts/token"),
    ("create", "rolebindings.rbac.authorization.k8s.io"),
    ("create", "clusterroles.rbac.authorization.k8s.io"),
    ("create", "customresourcedefinitions.apiextensions.k8s.io"),
    ("update", "customresourcedefinitions.apiextensions.k8s.io"),
    ("delete", "namespaces"),
    ("create", "namespaces"),
    ("list", "nodes"),
    ("delete", "events"),
    ("*", "*"),
]


@pytest.mark.parametrize(
    ("verb", "resource", "scope"),
    [
        pytest.param(*row, id=f"{row[0]}-{row[1]}{''.join(row[2])}")
        for row in OPERATOR_NEEDS
    ],
)
def test_operator_account_allowed(
    crds: ControlPlane, release: str, verb: str, resource: str, scope: tuple[str, ...]
) -> None:
    account = f"{release}:adaptrec-operator"

    assert can_i(crds, account, verb, resource, "--all-namespaces", *scope)


@pytest.mark.parametrize(
    ("verb", "resource"),
    [pytest.param(*row, id=f"{row[0]}-{row[1]}") for row in OPERATOR_FORBIDDEN],
)
def test_operator_account_forbidden(
    crds: ControlPlane, release: str, verb: str, resource: str
) -> None:
    account = f"{release}:adaptrec-operator"

    assert not can_i(crds, account, verb, resource, "--all-namespaces")
    assert not can_i(crds, account, verb, resource, "-n", release)


def rules_of(plane: ControlPlane, account: str, namespace: str) -> list[str]:
    """Return the lines of `kubectl auth can-i --list` for ``account``."""
    result = plane.kubectl(
        "auth", "can-i", "--list", "-n", namespace,
        f"--as=system:serviceaccount:{account}",
    )  # fmt: skip
    return sorted(result.stdout.splitlines()[1:])


def test_training_account_has_no_rights(crds: ControlPlane, release: str) -> None:
    # A ServiceAccount bound to nothing has only what every authenticated user
    # has (discovery, self reviews); the training account must have no more.
    crds.kubectl("create", "serviceaccount", "unbound", "-n", release)

    training = rules_of(crds, f"{release}:adaptrec-training", release)

    assert training == rules_of(crds, f"{release}:unbound", release)
    for verb, resource in [("get", "pods"), ("list", "secrets"), ("create", "jobs")]:
        assert not can_i(
            crds, f"{release}:adaptrec-training", verb, resource, "-n", release
        )


@pytest.fixture(scope="module")
def namespaced_release(crds: ControlPlane) -> Iterator[tuple[str, str]]:
    """The chart installed with watchNamespace; returns (release, watched)."""
    namespace = crds.create_namespace("ops")
    watched = crds.create_namespace("recs")
    crds.helm(
        "install", "scoped", str(CHART), "--namespace", namespace,
        "--set", f"watchNamespace={watched}",
    )  # fmt: skip
    yield namespace, watched
    crds.helm("uninstall", "scoped", "--namespace", namespace)
    for name in (namespace, watched):
        crds.kubectl("delete", "namespace", name, "--wait=false")


def test_namespaced_install_confines_operator(
    crds: ControlPlane, namespaced_release: tuple[str, str]
) -> None:
    namespace, watched = namespaced_release
    account = f"{namespace}:scoped-adaptrec-operator"

    assert can_i(crds, account, "create", "jobs.batch", "-n", watched)
    assert can_i(
        crds, account, "patch", "hyperparampolicies.adaptrec.io", "-n", watched
    )
    assert can_i(
        crds, account, "list", "customresourcedefinitions.apiextensions.k8s.io"
    )
    assert not can_i(crds, account, "create", "jobs.batch", "-n", namespace)
    assert not can_i(crds, account, "list", "hyperparampolicies.adaptrec.io", "-A")
    assert not can_i(crds, account, "list", "namespaces")
    assert not can_i(crds, account, "get", "secrets", "-n", watched)
