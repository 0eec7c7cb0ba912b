"""A small Kubernetes REST client for the objects the operator reads and writes.

Objects travel as plain JSON dicts with the API's own camelCase keys, which is
what the pure functions in this package take and return. Credentials come from
the kubeconfig (``KUBECONFIG`` or ``~/.kube/config``) or, inside a pod, from the
mounted ServiceAccount, through the ``kubernetes`` package's loaders.
"""

from __future__ import annotations

import logging
import ssl
import threading
from collections.abc import Mapping
from typing import Any

import httpx
from kubernetes import config as kube_config
from kubernetes.client import Configuration

from adaptrec.operator.policy import GROUP, PLURAL, VERSION

log = logging.getLogger(__name__)

REQUEST_TIMEOUT_SECONDS = 10.0
MERGE_PATCH = {"Content-Type": "application/merge-patch+json"}


class KubeError(Exception):
    """An API request failed; ``status`` is the HTTP status (0 without a response)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class ConflictError(KubeError):
    """The object changed since it was read (HTTP 409); read it again and retry."""


def load_configuration(kubeconfig: str | None = None) -> Configuration:
    """Load credentials from a kubeconfig, or from the pod's ServiceAccount."""
    configuration = Configuration()
    try:
        kube_config.load_kube_config(
            config_file=kubeconfig, client_configuration=configuration
        )
    except (kube_config.ConfigException, FileNotFoundError, TypeError) as error:
        if kubeconfig:
            raise kube_config.ConfigException(
                f"kubeconfig {kubeconfig} is unusable: {error}"
            ) from None
        try:
            kube_config.load_incluster_config(client_configuration=configuration)
        except kube_config.ConfigException as in_pod_error:
            raise kube_config.ConfigException(
                f"no usable kubeconfig ({error}) and no pod ServiceAccount "
                f"({in_pod_error})"
            ) from None
    return configuration


def bearer_header(
    configuration: Configuration, lock: threading.Lock | None = None
) -> str | None:
    """Return the ``Authorization`` header value, refreshing a token file if due.

    kubernetes 36.0.1 and later store the token under ``BearerToken``; older
    releases used ``authorization``.
    """
    with lock or threading.Lock():
        return configuration.get_api_key_with_prefix(
            "BearerToken"
        ) or configuration.get_api_key_with_prefix("authorization")


def ssl_context(configuration: Configuration) -> ssl.SSLContext | bool:
    """Build the TLS context: the cluster's CA and, if configured, a client
    certificate."""
    if not configuration.host.startswith("https"):
        return False
    context = ssl.create_default_context(cafile=configuration.ssl_ca_cert)
    if not configuration.verify_ssl:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if configuration.cert_file and configuration.key_file:
        context.load_cert_chain(configuration.cert_file, configuration.key_file)
    return context


class KubeApi:
    """Typed helpers over the REST API for policies, Jobs, Pods, ConfigMaps and
    InferenceServices. Thread-safe: kopf runs sync handlers in a thread pool."""

    def __init__(self, configuration: Configuration) -> None:
        self.configuration = configuration
        self._client = httpx.Client(
            base_url=configuration.host,
            verify=ssl_context(configuration),
            timeout=REQUEST_TIMEOUT_SECONDS,
        )
        self._lock = threading.Lock()

    def close(self) -> None:
        self._client.close()

    def _headers(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        headers = {"Accept": "application/json"}
        if token := bearer_header(self.configuration, self._lock):
            headers["Authorization"] = token
        headers.update(extra or {})
        return headers

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
        missing_ok: bool = False,
    ) -> dict[str, Any] | None:
        """Send one request and return the JSON body.

        Returns None for 404 when ``missing_ok``. Raises :class:`ConflictError`
        for 409 and :class:`KubeError` for other failures, with the API's message.
        """
        try:
            response = self._client.request(
                method,
                path,
                json=body,
                headers=self._headers(headers),
                params=params,
            )
        except httpx.HTTPError as error:
            raise KubeError(0, f"{method} {path}: {error}") from error
        if response.status_code == 404 and missing_ok:
            return None
        if response.status_code >= 400:
            try:
                message = response.json().get("message", response.text)
            except ValueError:
                message = response.text
            error_class = ConflictError if response.status_code == 409 else KubeError
            raise error_class(
                response.status_code,
                f"{method} {path}: {response.status_code} {message}",
            )
        return response.json() if response.content else {}

    # Policies ---------------------------------------------------------------------

    @staticmethod
    def _policy_path(namespace: str, name: str = "") -> str:
        path = f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/{PLURAL}"
        return f"{path}/{name}" if name else path

    def get_policy(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self.request("GET", self._policy_path(namespace, name), missing_ok=True)

    def patch_policy_status(
        self,
        namespace: str,
        name: str,
        status: Mapping[str, Any],
        resource_version: str,
    ) -> dict[str, Any]:
        """Merge ``status`` into the policy's status, on the condition that the
        policy is still at ``resource_version``.

        Raises :class:`ConflictError` when another client wrote it since."""
        body = {"metadata": {"resourceVersion": resource_version}, "status": status}
        result = self.request(
            "PATCH",
            self._policy_path(namespace, name) + "/status",
            body=body,
            headers=MERGE_PATCH,
        )
        assert result is not None
        return result

    # Jobs and Pods ----------------------------------------------------------------

    def get_job(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self.request(
            "GET", f"/apis/batch/v1/namespaces/{namespace}/jobs/{name}", missing_ok=True
        )

    def create_or_get(self, path: str, manifest: Mapping[str, Any]) -> dict[str, Any]:
        """Create ``manifest`` under ``path``, or return the existing object."""
        try:
            created = self.request("POST", path, body=manifest)
            assert created is not None
            return created
        except KubeError as error:
            if error.status != 409:
                raise
        existing = self.request("GET", f"{path}/{manifest['metadata']['name']}")
        assert existing is not None
        return existing

    def create_job(self, manifest: Mapping[str, Any]) -> dict[str, Any]:
        namespace = manifest["metadata"]["namespace"]
        return self.create_or_get(
            f"/apis/batch/v1/namespaces/{namespace}/jobs", manifest
        )

    def create_service(self, manifest: Mapping[str, Any]) -> dict[str, Any]:
        namespace = manifest["metadata"]["namespace"]
        return self.create_or_get(f"/api/v1/namespaces/{namespace}/services", manifest)

    def delete_job(self, namespace: str, name: str) -> None:
        self.request(
            "DELETE",
            f"/apis/batch/v1/namespaces/{namespace}/jobs/{name}",
            body={"propagationPolicy": "Background"},
            missing_ok=True,
        )

    def list_job_pods(self, namespace: str, job: Mapping[str, Any]) -> list[dict]:
        """Return the Pods that the Job controller created for ``job``."""
        uid = job["metadata"]["uid"]
        result = self.request(
            "GET",
            f"/api/v1/namespaces/{namespace}/pods",
            params={"labelSelector": f"batch.kubernetes.io/controller-uid={uid}"},
        )
        return list((result or {}).get("items") or [])

    # ConfigMaps -------------------------------------------------------------------

    def get_configmap(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self.request(
            "GET", f"/api/v1/namespaces/{namespace}/configmaps/{name}", missing_ok=True
        )

    def create_configmap(self, manifest: Mapping[str, Any]) -> dict[str, Any]:
        namespace = manifest["metadata"]["namespace"]
        return self.create_or_get(
            f"/api/v1/namespaces/{namespace}/configmaps", manifest
        )

    def patch_configmap(
        self, namespace: str, name: str, patch: Mapping[str, Any]
    ) -> dict[str, Any]:
        result = self.request(
            "PATCH",
            f"/api/v1/namespaces/{namespace}/configmaps/{name}",
            body=patch,
            headers=MERGE_PATCH,
        )
        assert result is not None
        return result

    # InferenceServices ------------------------------------------------------------

    @staticmethod
    def _isvc_path(namespace: str, name: str) -> str:
        return (
            f"/apis/serving.kserve.io/v1beta1/namespaces/{namespace}"
            f"/inferenceservices/{name}"
        )

    def get_isvc(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self.request("GET", self._isvc_path(namespace, name), missing_ok=True)

    def patch_isvc(
        self, namespace: str, name: str, patch: Mapping[str, Any]
    ) -> dict[str, Any]:
        result = self.request(
            "PATCH", self._isvc_path(namespace, name), body=patch, headers=MERGE_PATCH
        )
        assert result is not None
        return result
