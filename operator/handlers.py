"""The kopf handlers: thin wrappers that hand each policy to the reconciler.

Handlers are registered on a registry built here, not on kopf's global one, so
the CLI, the tests and the benchmark each run an operator with their own
settings in one process.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import kopf
from kubernetes.client import Configuration

from adaptrec.operator.kube import KubeApi, bearer_header
from adaptrec.operator.policy import (
    DEFAULT_TRAINING_ACCOUNT,
    GROUP,
    PLURAL,
    VERSION,
    PolicyError,
    parse_policy_spec,
)
from adaptrec.operator.reconcile import Reconciler

FINALIZER = "adaptrec.io/finalizer"
# kopf's per-object loggers are adapters over this logger.
OBJECT_LOGGER = logging.getLogger("kopf.objects")


class QuietTimerFilter(logging.Filter):
    """Drop kopf's line for each successful timer run.

    Object log lines become Kubernetes Events, and the reconcile timer succeeds
    every tick, so this line alone would post an Event per policy per tick.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Timer 'reconcile' succeeded")


def connection_info(configuration: Configuration) -> kopf.ConnectionInfo:
    """Describe the API server and credentials for kopf's own client."""
    header = bearer_header(configuration) or ""
    scheme, _, token = header.partition(" ")
    return kopf.ConnectionInfo(
        server=configuration.host,
        ca_path=configuration.ssl_ca_cert,
        insecure=not configuration.verify_ssl,
        scheme=scheme or None,
        token=token or None,
        certificate_path=configuration.cert_file,
        private_key_path=configuration.key_file,
    )


def build_registry(
    configuration: Configuration,
    tick_interval: float,
    reconciler_factory: Callable[[KubeApi], Reconciler] | None = None,
    training_account: str = DEFAULT_TRAINING_ACCOUNT,
    scan_cluster: bool = True,
) -> kopf.OperatorRegistry:
    """Register the handlers for HyperparamPolicy on a new registry.

    ``tick_interval`` is the seconds between two reconciles of one policy; each
    reconcile also checks whether an analysis interval has passed. Without
    ``scan_cluster``, kopf serves the namespaces it is given and does not list
    namespaces, which a namespaced Role does not allow.
    """
    registry = kopf.OperatorRegistry()
    shared: dict[str, Any] = {}
    if reconciler_factory is None:

        def reconciler_factory(api: KubeApi) -> Reconciler:
            return Reconciler(api, training_account=training_account)

    @kopf.on.login(registry=registry)
    def login(**_: Any) -> kopf.ConnectionInfo:
        return connection_info(configuration)

    @kopf.on.startup(registry=registry)
    def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
        # Lines logged through a handler's logger become Events on the policy.
        settings.posting.loggers = True
        quiet = QuietTimerFilter()
        if not any(isinstance(f, QuietTimerFilter) for f in OBJECT_LOGGER.filters):
            OBJECT_LOGGER.addFilter(quiet)
        settings.posting.level = logging.INFO
        settings.posting.reporting_component = "adaptrec-operator"
        settings.persistence.finalizer = FINALIZER
        # Notice a restarted API server within a minute, not at the default 5.
        settings.watching.server_timeout = 60
        settings.watching.client_timeout = 70
        settings.networking.request_timeout = 30
        settings.scanning.disabled = not scan_cluster
        shared["reconciler"] = reconciler_factory(KubeApi(configuration))

    @kopf.on.cleanup(registry=registry)
    def close(**_: Any) -> None:
        reconciler = shared.pop("reconciler", None)
        if reconciler is not None:
            reconciler.api.close()

    @kopf.on.create(GROUP, VERSION, PLURAL, registry=registry, id="check-spec")
    @kopf.on.update(GROUP, VERSION, PLURAL, registry=registry, id="check-spec")
    @kopf.on.resume(GROUP, VERSION, PLURAL, registry=registry, id="check-spec")
    def check_spec(spec: Any, namespace: str, logger: logging.Logger, **_: Any) -> None:
        try:
            parse_policy_spec(dict(spec), namespace, training_account)
        except PolicyError as error:
            raise kopf.PermanentError(f"invalid spec: {error}") from None

    @kopf.timer(
        GROUP,
        VERSION,
        PLURAL,
        registry=registry,
        id="reconcile",
        interval=tick_interval,
    )
    def reconcile(namespace: str, name: str, logger: logging.Logger, **_: Any) -> None:
        shared["reconciler"].reconcile(namespace, name, logger)

    @kopf.on.delete(GROUP, VERSION, PLURAL, registry=registry, id="finalize")
    def finalize(
        namespace: str, name: str, body: Any, logger: logging.Logger, **_: Any
    ) -> None:
        reconciler: Reconciler = shared["reconciler"]
        fresh = reconciler.api.get_policy(namespace, name)
        reconciler.finalize(fresh or dict(body), logger)

    return registry
