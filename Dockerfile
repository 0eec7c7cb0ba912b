# One image for the operator, the trainer and the model server: the entrypoint is
# the adaptrec CLI, so a Pod picks its role with args (["operator"], ["train", ...],
# ["serve", ...]).
#
# torch comes from PyPI, whose Linux x86_64 wheel is built with CUDA and pulls
# the CUDA runtime libraries as nvidia-* wheels, so the same image trains on a
# GPU node (with the NVIDIA container toolkit providing the driver) and runs on
# CPU elsewhere.
#
# Build: docker build -t adaptrec:0.1.0 .

# NOTE: pinned by exact tag; pin by digest too (python:3.11.13-slim-bookworm@sha256:...)
# in a registry you control, because a tag can be re-pushed.
ARG PYTHON_IMAGE=python:3.11.13-slim-bookworm

# ---------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS builder

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PATH=/opt/venv/bin:$PATH

# A compiler for any locked dependency that ships no wheel for this platform; it
# stays in this stage.
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential=12.9 \
    && rm -rf /var/lib/apt/lists/*

RUN python -m venv /opt/venv

WORKDIR /src

# Runtime dependencies first, at the versions requirements.lock pins, so this
# large layer is rebuilt only when the lock or the dependency list changes. The
# lock is a constraints file here: the development tools it also pins stay out.
COPY pyproject.toml requirements.lock ./
RUN python -c "import tomllib; \
print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > runtime-requirements.txt \
    && pip install --constraint requirements.lock --requirement runtime-requirements.txt

COPY README.md ./
COPY adaptrec/ adaptrec/
COPY operator/ operator/
COPY model_server/ model_server/
RUN pip install --no-deps . \
    && pip check

# ---------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE}

LABEL org.opencontainers.image.title="adaptrec" \
      org.opencontainers.image.description="HyperparamPolicy operator, DQN trainer and model server" \
      org.opencontainers.image.licenses="Apache-2.0"

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/home/adaptrec \
    XDG_CACHE_HOME=/tmp/cache \
    HF_HUB_OFFLINE=1 \
    NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility

RUN groupadd --gid 10001 adaptrec \
    && useradd --uid 10001 --gid 10001 --no-log-init --create-home \
        --home-dir /home/adaptrec --shell /usr/sbin/nologin adaptrec

COPY --from=builder /opt/venv /opt/venv
# The Feast repository definitions; its data/ folder is built by
# `adaptrec features build` into a volume, not baked into the image.
COPY --chown=10001:10001 feature_repo/ /app/feature_repo/

WORKDIR /app
USER 10001:10001

# 8080: the model server's HTTP port and the operator's liveness probe;
# 8081: the operator's /metrics.
EXPOSE 8080 8081

ENTRYPOINT ["adaptrec"]
CMD ["--help"]
