"""Fixtures of the cluster tier: a real kube-apiserver, etcd and controller manager.

Build the binaries first with ``scripts/build-k8s.sh``. A test that needs them
fails, and never skips, when they are missing, because CI builds them before it
runs pytest.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from adaptrec.testing.controlplane import (
    REPO_ROOT,
    BinariesMissingError,
    ControlPlane,
    ControlPlaneError,
    find_binaries,
)

POLICY_CRD = REPO_ROOT / "crds" / "hyperparampolicies.adaptrec.io.yaml"
INFERENCE_SERVICE_CRD = (
    Path(__file__).parent / "manifests" / "inferenceservice-crd.yaml"
)

_shared_planes: list[ControlPlane] = []


@pytest.fixture(scope="session")
def binaries() -> dict[str, Path]:
    """Paths of etcd, kube-apiserver, kube-controller-manager, kubectl and helm."""
    try:
        return find_binaries()
    except BinariesMissingError as error:
        message = str(error)
    # Failing outside the except block keeps the traceback chain out of the report.
    pytest.fail(message, pytrace=False)


@pytest.fixture(scope="session")
def control_plane(
    binaries: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ControlPlane]:
    """A local control plane on 127.0.0.1, shared by the whole test session.

    etcd, kube-apiserver and kube-controller-manager run on free loopback ports,
    with RBAC authorization (``--authorization-mode=RBAC``), service account
    tokens signed by a key generated in a temporary folder, and an admin
    kubeconfig (a client certificate in group system:masters) at
    ``control_plane.kubeconfig``. Each component is stopped after the session,
    also when tests fail.

    Pods never start: there is no kubelet and no scheduler, so Pods of Jobs and
    Deployments stay Pending. kube-controller-manager runs every default
    controller, so the garbage collector follows owner references and the Job
    controller creates Pods.
    """
    # Another test folder's conftest may import this fixture, which gives it a
    # fixture definition of its own. The module-level plane keeps it to one
    # plane per session, stopped by the definition that started it.
    if _shared_planes:
        yield _shared_planes[0]
        return
    plane = ControlPlane(tmp_path_factory.mktemp("controlplane"), binaries)
    try:
        plane.start()
    except ControlPlaneError as error:
        message = f"the local control plane did not start: {error}"
        pytest.fail(message, pytrace=False)
    _shared_planes.append(plane)
    try:
        yield plane
    finally:
        _shared_planes.clear()
        plane.stop()


@pytest.fixture(scope="session")
def crds(control_plane: ControlPlane) -> ControlPlane:
    """The control plane with the HyperparamPolicy and InferenceService CRDs served."""
    control_plane.kubectl(
        "apply",
        "--server-side",
        "-f",
        str(POLICY_CRD),
        "-f",
        str(INFERENCE_SERVICE_CRD),
    )
    control_plane.kubectl(
        "wait",
        "--for=condition=Established",
        "--timeout=60s",
        "crd/hyperparampolicies.adaptrec.io",
        "crd/inferenceservices.serving.kserve.io",
    )
    return control_plane


@pytest.fixture
def namespace(crds: ControlPlane) -> Iterator[str]:
    """A fresh namespace for one test, deleted afterwards."""
    name = crds.create_namespace("test")
    yield name
    crds.kubectl("delete", "namespace", name, "--wait=false")
