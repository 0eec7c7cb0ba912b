"""``adaptrec operator``: run the HyperparamPolicy operator in this process."""

from __future__ import annotations

import argparse
import logging
import os
from urllib.parse import urlparse

import kopf
from kubernetes.config import ConfigException

from adaptrec.cli import UsageError
from adaptrec.operator.handlers import build_registry
from adaptrec.operator.kube import load_configuration
from adaptrec.operator.metrics import serve_metrics
from adaptrec.operator.policy import DEFAULT_TRAINING_ACCOUNT

log = logging.getLogger(__name__)

LOOPBACK = "127.0.0.1"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-n",
        "--namespace",
        action="append",
        default=[],
        help="watch policies in this namespace (repeatable; glob patterns allowed); "
        "without it, watch every namespace",
    )
    parser.add_argument(
        "-A",
        "--all-namespaces",
        action="store_true",
        help="watch every namespace (the default without --namespace)",
    )
    parser.add_argument(
        "--standalone",
        action="store_true",
        help="accepted for kopf's convention; the operator always runs standalone "
        "(no peering objects), so run one replica",
    )
    parser.add_argument(
        "--training-service-account",
        default=os.environ.get("ADAPTREC_TRAINING_SERVICE_ACCOUNT")
        or DEFAULT_TRAINING_ACCOUNT,
        help="ServiceAccount of training Pods when a policy names none "
        "(default: $ADAPTREC_TRAINING_SERVICE_ACCOUNT or %(default)s)",
    )
    parser.add_argument(
        "--kubeconfig",
        help="kubeconfig file (default: $KUBECONFIG, ~/.kube/config, or the pod's "
        "ServiceAccount)",
    )
    parser.add_argument(
        "--liveness",
        default="http://127.0.0.1:8080/healthz",
        help="URL of the liveness endpoint kopf serves (use 0.0.0.0 inside a pod; "
        "'none' turns it off; default: %(default)s)",
    )
    parser.add_argument(
        "--metrics-port",
        type=int,
        default=int(os.environ.get("ADAPTREC_METRICS_PORT") or 8081),
        help="port of the operator's Prometheus /metrics (0 turns it off; "
        "default: $ADAPTREC_METRICS_PORT or 8081)",
    )
    parser.add_argument(
        "--metrics-address",
        help="address /metrics binds to (default: the --liveness host, so a pod "
        "that serves its probe on 0.0.0.0 serves metrics there too; 127.0.0.1 "
        "without a liveness endpoint)",
    )
    parser.add_argument(
        "--tick-interval",
        type=float,
        default=10.0,
        help="seconds between two reconciles of one policy (default: %(default)s)",
    )


def run(args: argparse.Namespace) -> int:
    if args.tick_interval <= 0:
        raise UsageError(f"--tick-interval must be positive, got {args.tick_interval}")
    if not 0 <= args.metrics_port <= 65535:
        raise UsageError(
            f"--metrics-port must lie in 0..65535, got {args.metrics_port}"
        )
    liveness = None if args.liveness.lower() == "none" else args.liveness
    if liveness is not None and urlparse(liveness).scheme not in ("http", "https"):
        raise UsageError(
            f"--liveness must be an http URL such as http://0.0.0.0:8080/healthz "
            f"or 'none', got {args.liveness!r}"
        )
    try:
        configuration = load_configuration(args.kubeconfig)
    except (ConfigException, OSError) as error:
        raise UsageError(
            f"cannot load Kubernetes credentials: {error}; pass --kubeconfig or set "
            "KUBECONFIG"
        ) from None
    if args.all_namespaces and args.namespace:
        raise UsageError("--all-namespaces and --namespace exclude each other")
    # Plain namespace names need no namespace listing, which a namespaced Role
    # forbids; kopf would retry it for a minute before falling back.
    patterns = any(set("*?[!") & set(name) for name in args.namespace)
    registry = build_registry(
        configuration,
        args.tick_interval,
        training_account=args.training_service_account,
        scan_cluster=not args.namespace or patterns,
    )
    if args.metrics_port:
        address = args.metrics_address
        if address is None:
            address = (urlparse(liveness).hostname if liveness else None) or LOOPBACK
        try:
            serve_metrics(args.metrics_port, address)
        except OSError as error:
            raise UsageError(
                f"cannot serve metrics on {address}:{args.metrics_port}: {error}; "
                "pick another --metrics-port"
            ) from None
        log.info("operator metrics on http://%s:%d/metrics", address, args.metrics_port)
    kopf.run(
        registry=registry,
        standalone=True,
        namespaces=args.namespace,
        clusterwide=not args.namespace,
        liveness_endpoint=liveness,
    )
    return 0
