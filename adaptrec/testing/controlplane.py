"""A local Kubernetes control plane for the cluster test tier.

:class:`ControlPlane` starts etcd, kube-apiserver and kube-controller-manager on
127.0.0.1, each on a free port, with RBAC authorization, service account token
signing and an admin kubeconfig. The binaries come from ``scripts/build-k8s.sh``
(or from ``KUBEBUILDER_ASSETS``); :func:`find_binaries` raises
:class:`BinariesMissingError` with that instruction when they are absent.

Pods never start on this plane: there is no kubelet and no scheduler, so Jobs and
Deployments get Pods that stay Pending. kube-controller-manager does run, so the
garbage collector deletes dependents through owner references, the Job
controller creates Pods, and namespaces get their default ServiceAccount.

Tests use it through the session fixture in ``tests/cluster/conftest.py``; other
test modules can import this module to start a plane of their own.
"""

from __future__ import annotations

import ctypes
import logging
import os
import re
import signal
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO

import yaml

from adaptrec.testing.pki import (
    CertificateAuthority,
    KeyPair,
    write_service_account_keys,
)

logger = logging.getLogger(__name__)

LOOPBACK = "127.0.0.1"
BINARIES = ("etcd", "kube-apiserver", "kube-controller-manager", "kubectl", "helm")
REPO_ROOT = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = "scripts/build-k8s.sh"
_KUBERNETES_GO_MOD = REPO_ROOT / "hack" / "controlplane" / "kubernetes" / "go.mod"
_STOP_TIMEOUT_S = 15.0


class ControlPlaneError(RuntimeError):
    """The control plane failed to start, or a command against it failed."""


class BinariesMissingError(ControlPlaneError):
    """A control plane binary is neither built nor in KUBEBUILDER_ASSETS."""


def kubernetes_version() -> str:
    """Return the k8s.io/kubernetes version pinned in hack/controlplane."""
    try:
        text = _KUBERNETES_GO_MOD.read_text()
    except FileNotFoundError as error:
        raise BinariesMissingError(
            f"{_KUBERNETES_GO_MOD} not found; the control plane helpers need a "
            "source checkout of adaptrec"
        ) from error
    match = re.search(r"^\s*k8s\.io/kubernetes (v\S+)", text, re.MULTILINE)
    if match is None:
        raise BinariesMissingError(
            f"no k8s.io/kubernetes version in {_KUBERNETES_GO_MOD}"
        )
    return match.group(1)


def binary_cache_dir() -> Path:
    """Return the folder where scripts/build-k8s.sh puts the binaries."""
    cache_home = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache_home) / "adaptrec" / f"k8s-{kubernetes_version()}"


def find_binaries() -> dict[str, Path]:
    """Locate every binary, preferring KUBEBUILDER_ASSETS over the build cache.

    Raises:
        BinariesMissingError: one or more binaries are in neither place.
    """
    folders = [binary_cache_dir()]
    assets = os.environ.get("KUBEBUILDER_ASSETS")
    if assets:
        folders.insert(0, Path(assets))
    found: dict[str, Path] = {}
    missing = []
    for name in BINARIES:
        for folder in folders:
            candidate = folder / name
            if candidate.is_file() and os.access(candidate, os.X_OK):
                found[name] = candidate
                break
        else:
            missing.append(name)
    if missing:
        searched = " and ".join(str(folder) for folder in folders)
        raise BinariesMissingError(
            f"control plane binaries missing: {', '.join(missing)} (looked in "
            f"{searched}). Run {BUILD_SCRIPT} to build them, or set "
            "KUBEBUILDER_ASSETS to a folder that contains them."
        )
    return found


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that is free at the time of the call."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def wait_until(
    condition: Callable[[], bool], timeout_s: float, what: str, interval_s: float = 0.25
) -> None:
    """Call ``condition`` until it returns true, or raise after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise ControlPlaneError(
                f"timed out after {timeout_s:.0f} s waiting for {what}"
            )
        time.sleep(interval_s)


def _die_with_parent() -> None:
    """Ask Linux to send SIGTERM to the child when the test process dies.

    Without it a killed pytest run would leave etcd and the API server running.
    """
    pr_set_pdeathsig = 1
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
    except OSError:
        return
    libc.prctl(pr_set_pdeathsig, signal.SIGTERM)


class _Process:
    """One control plane component and its log file."""

    def __init__(self, name: str, args: Sequence[str], log_path: Path) -> None:
        self.name = name
        self.log_path = log_path
        self._log: IO[bytes] = log_path.open("wb")
        logger.info("starting %s (log: %s)", name, log_path)
        self.popen = subprocess.Popen(
            list(args),
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            preexec_fn=_die_with_parent,
        )

    def check_running(self) -> None:
        code = self.popen.poll()
        if code is not None:
            raise ControlPlaneError(
                f"{self.name} exited with status {code}; last log lines:\n"
                + self.log_tail()
            )

    def log_tail(self, lines: int = 30) -> str:
        self._log.flush()
        text = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(timeout=_STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                logger.warning(
                    "%s ignored SIGTERM for %.0f s; killing it",
                    self.name,
                    _STOP_TIMEOUT_S,
                )
                self.popen.kill()
                self.popen.wait()
        self._log.close()
        logger.info("stopped %s (status %s)", self.name, self.popen.returncode)


class ControlPlane:
    """etcd, kube-apiserver and kube-controller-manager on loopback ports.

    Use it as a context manager, or call :meth:`start` and :meth:`stop`. Every file
    (keys, kubeconfigs, etcd data, logs under ``logs/``) goes to ``work_dir``.

    Attributes:
        kubeconfig: admin kubeconfig (a client certificate in group
            system:masters); pass it to kubectl, helm or a Kubernetes client.
        server: URL of the API server, ``https://127.0.0.1:<port>``.
    """

    def __init__(
        self, work_dir: Path, binaries: Mapping[str, Path] | None = None
    ) -> None:
        self.work_dir = work_dir
        self.binaries = dict(binaries) if binaries is not None else find_binaries()
        self.logs_dir = work_dir / "logs"
        self.kubeconfig = work_dir / "admin.kubeconfig"
        self._apiserver_port = 0
        self.server = ""
        self._processes: list[_Process] = []
        self._admin: KeyPair | None = None
        self._ca: CertificateAuthority | None = None

    def __enter__(self) -> ControlPlane:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self, timeout_s: float = 120.0) -> None:
        """Start the three components and wait until each is ready.

        Raises:
            ControlPlaneError: a component exited or was not ready in time; the
                message includes the end of its log.
        """
        started = time.monotonic()
        try:
            self._start(timeout_s)
        except BaseException:
            self.stop()
            raise
        logger.info(
            "control plane ready at %s in %.1f s",
            self.server,
            time.monotonic() - started,
        )

    def _start(self, timeout_s: float) -> None:
        pki_dir = self.work_dir / "pki"
        for folder in (pki_dir, self.logs_dir):
            folder.mkdir(parents=True, exist_ok=True)

        # Keys and certificates.
        ca = CertificateAuthority(pki_dir)
        self._ca = ca
        serving = ca.issue(
            "apiserver",
            "kube-apiserver",
            server_hosts=(LOOPBACK, "localhost", "kubernetes", "kubernetes.default"),
        )
        self._admin = ca.issue(
            "admin", "adaptrec-test-admin", organizations=("system:masters",)
        )
        controller_manager = ca.issue(
            "controller-manager", "system:kube-controller-manager"
        )
        service_account = write_service_account_keys(pki_dir)

        # etcd.
        etcd_port, peer_port = free_port(), free_port()
        etcd_url = f"http://{LOOPBACK}:{etcd_port}"
        peer_url = f"http://{LOOPBACK}:{peer_port}"
        etcd = self._spawn(
            "etcd",
            [
                "--name=adaptrec-test",
                f"--data-dir={self.work_dir / 'etcd'}",
                f"--listen-client-urls={etcd_url}",
                f"--advertise-client-urls={etcd_url}",
                f"--listen-peer-urls={peer_url}",
                f"--initial-advertise-peer-urls={peer_url}",
                f"--initial-cluster=adaptrec-test={peer_url}",
                # Test data is thrown away, so durability is traded for speed.
                "--unsafe-no-fsync",
                "--log-level=warn",
            ],
        )
        self._wait_http(etcd, f"{etcd_url}/health", timeout_s)

        # kube-apiserver.
        self._apiserver_port = free_port()
        self.server = f"https://{LOOPBACK}:{self._apiserver_port}"
        apiserver = self._spawn(
            "kube-apiserver",
            [
                f"--etcd-servers={etcd_url}",
                f"--bind-address={LOOPBACK}",
                f"--advertise-address={LOOPBACK}",
                f"--secure-port={self._apiserver_port}",
                f"--cert-dir={self.work_dir / 'apiserver'}",
                f"--tls-cert-file={serving.cert}",
                f"--tls-private-key-file={serving.key}",
                f"--client-ca-file={ca.cert}",
                "--authorization-mode=RBAC",
                "--service-account-issuer=https://kubernetes.default.svc",
                f"--service-account-key-file={service_account.cert}",
                f"--service-account-signing-key-file={service_account.key}",
                "--service-cluster-ip-range=10.0.0.0/24",
                # The API server would publish 127.0.0.1 as the endpoint of the
                # kubernetes Service, which Endpoints validation rejects.
                "--endpoint-reconciler-type=none",
                "--profiling=false",
            ],
        )
        self._write_kubeconfig(self.kubeconfig, self._admin)
        self._wait_http(
            apiserver, f"{self.server}/readyz", timeout_s, client=self._admin
        )

        # kube-controller-manager. Each controller acts as its own service account,
        # as on a kubeadm cluster, so RBAC applies to the controllers too.
        kcm_kubeconfig = self.work_dir / "controller-manager.kubeconfig"
        self._write_kubeconfig(kcm_kubeconfig, controller_manager)
        kcm_port = free_port()
        controller_manager_process = self._spawn(
            "kube-controller-manager",
            [
                f"--kubeconfig={kcm_kubeconfig}",
                f"--authentication-kubeconfig={kcm_kubeconfig}",
                f"--authorization-kubeconfig={kcm_kubeconfig}",
                f"--bind-address={LOOPBACK}",
                f"--secure-port={kcm_port}",
                f"--cert-dir={self.work_dir / 'controller-manager'}",
                "--leader-elect=false",
                "--use-service-account-credentials=true",
                f"--service-account-private-key-file={service_account.key}",
                f"--root-ca-file={ca.cert}",
                "--profiling=false",
            ],
        )
        self._wait_http(
            controller_manager_process,
            f"https://{LOOPBACK}:{kcm_port}/healthz",
            timeout_s,
            verify=False,
        )
        # The service account controller is one of the controllers that
        # kube-controller-manager starts; its first ServiceAccount shows that
        # the controllers run and can write.
        self._wait_http(
            controller_manager_process,
            f"{self.server}/api/v1/namespaces/default/serviceaccounts/default",
            timeout_s,
            client=self._admin,
        )

    def _spawn(self, name: str, args: list[str]) -> _Process:
        process = _Process(
            name, [str(self.binaries[name]), *args], self.logs_dir / f"{name}.log"
        )
        self._processes.append(process)
        return process

    def _wait_http(
        self,
        process: _Process,
        url: str,
        timeout_s: float,
        *,
        client: KeyPair | None = None,
        verify: bool = True,
    ) -> None:
        """Wait until ``url`` returns HTTP 200, failing early if ``process`` exits."""
        context: ssl.SSLContext | None = None
        if url.startswith("https"):
            context = ssl.create_default_context(
                cafile=str(self._ca.cert) if self._ca else None
            )
            if not verify:
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
            if client is not None:
                context.load_cert_chain(client.cert, client.key)
        # Requests to loopback bypass any proxy set in HTTP(S)_PROXY.
        opener = urllib.request.build_opener(
            urllib.request.ProxyHandler({}),
            urllib.request.HTTPSHandler(context=context),
        )

        def ready() -> bool:
            process.check_running()
            try:
                with opener.open(url, timeout=5) as response:
                    return bool(response.status == 200)
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                return False

        try:
            wait_until(ready, timeout_s, f"{process.name} at {url}")
        except ControlPlaneError as error:
            if process.popen.poll() is not None:
                raise
            raise ControlPlaneError(
                f"{error}; last log lines:\n{process.log_tail()}"
            ) from None

    def _write_kubeconfig(self, path: Path, user: KeyPair) -> None:
        assert self._ca is not None
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "adaptrec-test",
                    "cluster": {
                        "server": self.server,
                        "certificate-authority": str(self._ca.cert),
                    },
                }
            ],
            "users": [
                {
                    "name": "user",
                    "user": {
                        "client-certificate": str(user.cert),
                        "client-key": str(user.key),
                    },
                }
            ],
            "contexts": [
                {
                    "name": "adaptrec-test",
                    "context": {"cluster": "adaptrec-test", "user": "user"},
                }
            ],
            "current-context": "adaptrec-test",
        }
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        path.chmod(0o600)

    def stop(self) -> None:
        """Stop every component that was started, newest first."""
        while self._processes:
            self._processes.pop().stop()

    def env(self) -> dict[str, str]:
        """Return an environment for kubectl, helm or kopf that targets this plane.

        Helm's cache, config and data folders are moved under ``work_dir`` so the
        tests leave the user's own Helm settings alone.
        """
        env = dict(os.environ)
        env["KUBECONFIG"] = str(self.kubeconfig)
        for kind in ("CACHE", "CONFIG", "DATA"):
            env[f"HELM_{kind}_HOME"] = str(self.work_dir / "helm" / kind.lower())
        return env

    def run(
        self,
        tool: str,
        *args: str,
        input: str | None = None,
        check: bool = True,
        timeout_s: float = 120.0,
    ) -> subprocess.CompletedProcess[str]:
        """Run ``kubectl`` or ``helm`` against this plane and capture its output.

        Raises:
            ControlPlaneError: ``check`` is true and the command failed; the
                message carries the command and its stderr.
        """
        command = [str(self.binaries[tool]), *args]
        result = subprocess.run(
            command,
            input=input,
            capture_output=True,
            text=True,
            env=self.env(),
            timeout=timeout_s,
            check=False,
        )
        if check and result.returncode != 0:
            raise ControlPlaneError(
                f"{tool} {' '.join(args)} failed with status {result.returncode}:\n"
                f"{result.stderr.strip() or result.stdout.strip()}"
            )
        return result

    def create_namespace(self, prefix: str) -> str:
        """Create a namespace named ``<prefix>-<random suffix>`` and return its name."""
        name = f"{prefix}-{uuid.uuid4().hex[:6]}"
        self.kubectl("create", "namespace", name)
        return name

    def kubectl(
        self, *args: str, input: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """Run kubectl; see :meth:`run`."""
        return self.run("kubectl", *args, input=input, check=check)

    def helm(
        self, *args: str, input: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """Run helm; see :meth:`run`."""
        return self.run("helm", *args, input=input, check=check)
