"""Import kserve without letting it parse this process's command line.

kserve 0.21.0 runs ``argparse.parse_known_args()`` on ``sys.argv`` when
``kserve.model_server`` is imported, and ``import kserve`` imports that module. An
option meant for another program (``pytest --timeout 60``) would then be taken as
an abbreviation of kserve's ``--timeout-keep-alive``. Every module of this package
imports kserve through here, so kserve's parser reads an empty command line and
keeps its defaults.
"""

import sys

_argv = sys.argv
sys.argv = _argv[:1]
try:
    import kserve
    from kserve.errors import InvalidInput, ModelNotFound, ModelNotReady
    from kserve.model import InferenceVerb
    from kserve.model_repository import ModelRepository
    from kserve.protocol.dataplane import DataPlane
    from kserve.protocol.infer_type import (
        InferOutput,
        InferRequest,
        InferResponse,
    )
    from kserve.protocol.model_repository_extension import ModelRepositoryExtension
    from kserve.protocol.rest.server import metrics_handler
    from kserve.protocol.rest.v1_endpoints import V1Endpoints, register_v1_endpoints
    from kserve.protocol.rest.v2_endpoints import register_v2_endpoints
finally:
    sys.argv = _argv

__all__ = [
    "DataPlane",
    "InferOutput",
    "InferRequest",
    "InferResponse",
    "InferenceVerb",
    "InvalidInput",
    "ModelNotFound",
    "ModelNotReady",
    "ModelRepository",
    "ModelRepositoryExtension",
    "V1Endpoints",
    "kserve",
    "metrics_handler",
    "register_v1_endpoints",
    "register_v2_endpoints",
]
