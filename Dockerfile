# The COREL embedding service: a serving image with onnxruntime + FAISS and the default model.
#
#   docker build -t corel-embed:cpu .                          # CPU (default)
#   docker build -t corel-embed:gpu --build-arg VARIANT=gpu .  # CUDA 12: onnxruntime-gpu, faiss-gpu-cu12
#   docker build -t corel-embed:cpu-milvus --build-arg EXTRAS=milvus .  # + pymilvus (COREL_STORE=milvus)
#
# No torch and no training code: the venv holds the base dependencies of pyproject.toml only
# (the serving stack), the image holds corel/, service/ and models/fashion-mnist-cosine. The variant is
# a build argument rather than a stage per variant because the classic builder (what
# docker-compose v1 and Docker 20.10 use) builds every stage before the target, so a GPU stage
# would be downloaded on every CPU build. The GPU variant takes CUDA and cuDNN from NVIDIA's pip
# wheels; the driver comes from the host through the NVIDIA container toolkit.

ARG BASE_IMAGE=python:3.11-slim-bookworm

# ---------------------------------------------------------------------------- requirements
# The requirement list, read from pyproject's base dependencies so it lives in one place. The
# GPU variant swaps onnxruntime and faiss-cpu for the `gpu` extra (they cannot be installed side
# by side) and takes the CUDA/cuDNN wheels through onnxruntime-gpu[cuda,cudnn]. A stage of its
# own so that an edit of pyproject.toml that leaves the dependencies alone (a script, a lint
# rule) does not reinstall them: the builder copies only the resulting files, and the classic
# builder's cache compares copied files by content.
FROM ${BASE_IMAGE} AS requirements
ARG VARIANT=cpu
# pyproject extras to add, comma-separated: "milvus" for the replicas of the scale profile
ARG EXTRAS=""
# One CUDA major for the whole GPU image: faiss-gpu-cu12 is built for CUDA 12, and
# onnxruntime-gpu 1.27 and later are built for CUDA 13 (drivers >= 580), so keep ORT on 1.26.
ARG GPU_CONSTRAINTS="onnxruntime-gpu<1.27"
COPY pyproject.toml /tmp/pyproject.toml
RUN set -eu; \
    case "$VARIANT" in cpu|gpu) ;; *) echo "VARIANT must be cpu or gpu, not $VARIANT" >&2; exit 1;; esac; \
    mkdir /requirements; \
    python -c 'import re, sys, tomllib; \
project = tomllib.load(open("/tmp/pyproject.toml", "rb"))["project"]; \
deps = project["dependencies"]; \
name = lambda req: re.split(r"[\s\[<>=!~;]", req, maxsplit=1)[0].lower(); \
gpu = [re.sub(r"^onnxruntime-gpu(?=[^\w\[-]|$)", "onnxruntime-gpu[cuda,cudnn]", r) \
       for r in project["optional-dependencies"]["gpu"]]; \
deps = [d for d in deps if name(d) not in ("onnxruntime", "faiss-cpu")] + gpu \
       if sys.argv[1] == "gpu" else deps; \
deps += [d for e in filter(None, sys.argv[2].split(",")) \
         for d in project["optional-dependencies"][e]]; \
print("\n".join(deps))' "$VARIANT" "$EXTRAS" > /requirements/requirements.txt; \
    if [ "$VARIANT" = gpu ]; then echo "$GPU_CONSTRAINTS" | tr ' ' '\n'; fi \
      > /requirements/constraints.txt; \
    echo "$VARIANT" > /requirements/variant; \
    cat /requirements/*

# ---------------------------------------------------------------------------- builder
# The venv, in /opt/venv. Then it trims what serving never runs (pip, setuptools, the numpy,
# scipy and scikit-learn test suites: ~100 MB with their bytecode) and compiles the rest, so a
# read-only container starts without compiling. The GPU variant links the CUDA libraries of
# NVIDIA's wheels into /opt/venv/cuda/lib, which the runtime puts on LD_LIBRARY_PATH.
FROM ${BASE_IMAGE} AS builder
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
COPY --from=requirements /requirements /tmp/requirements
RUN set -eux; \
    python -m venv /opt/venv; \
    /opt/venv/bin/pip install --upgrade pip; \
    /opt/venv/bin/pip install -r /tmp/requirements/requirements.txt \
                              -c /tmp/requirements/constraints.txt; \
    /opt/venv/bin/pip uninstall -y setuptools pip; \
    if [ "$(cat /tmp/requirements/variant)" = gpu ]; then \
      mkdir -p /opt/venv/cuda/lib; \
      for d in /opt/venv/lib/python3*/site-packages/nvidia/*/lib; do \
        ln -sf "$d"/*.so* /opt/venv/cuda/lib/; \
      done; \
    fi; \
    site=$(echo /opt/venv/lib/python3*/site-packages); \
    for pkg in numpy scipy sklearn; do \
      find "$site/$pkg" -type d -name tests -prune -exec rm -rf {} +; \
    done; \
    find /opt/venv -name '__pycache__' -prune -exec rm -rf {} +; \
    /opt/venv/bin/python -m compileall -q /opt/venv/lib

# ---------------------------------------------------------------------------- runtime
# The base image copied into an empty one, so that the image's root directory is 0755 whatever
# the base had: the base that ../shared/tools/docker-here.sh makes with debootstrap (for
# machines without a registry) has it 0700, which a RUN chmod cannot change (layers do not
# record the root directory), and then no non-root process can resolve a path. With the
# official python image this only flattens the base into one layer (owners and modes are kept;
# the base's ENV is not, hence PATH and LANG below).
FROM ${BASE_IMAGE} AS base
FROM scratch AS runtime
COPY --from=base / /
ARG VARIANT=cpu
LABEL org.opencontainers.image.title="corel-embed" \
      org.opencontainers.image.description="COREL embedding service (FastAPI, onnxruntime, FAISS)"

# A fixed, unprivileged uid, so that a bind-mounted data directory can be chowned to it.
RUN set -eux; \
    groupadd --system --gid 10001 corel; \
    useradd --system --uid 10001 --gid corel --home-dir /app --no-create-home \
            --shell /usr/sbin/nologin corel; \
    mkdir -p /data; \
    chown corel:corel /data

# Metadata before the big copies: the classic builder runs a container for each instruction,
# and under the vfs storage driver (docker-here.sh) each one copies the whole filesystem.
# /opt/venv/cuda/lib holds links to the CUDA and cuDNN libraries of the GPU variant; it does not
# exist in the CPU image, where the entry is harmless. HOME=/tmp: libraries that keep a cache
# (onnxruntime's telemetry id) find a writable one, also on a read-only root filesystem.
ENV PATH=/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    LANG=C.UTF-8 \
    HOME=/tmp \
    LD_LIBRARY_PATH=/opt/venv/cuda/lib \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONPATH=/app \
    COREL_IMAGE_VARIANT=${VARIANT} \
    COREL_BUNDLE_PATH=/app/models/fashion-mnist-cosine \
    COREL_DATA_DIR=/data \
    COREL_PORT=8000
WORKDIR /app
USER corel
VOLUME ["/data"]
EXPOSE 8000
# Ready means model loaded, warmed up and indexes built (503 before). urllib raises on any
# status but 2xx, so the exit code says it all; the base image has no curl.
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request as u; u.urlopen('http://127.0.0.1:%s/readyz' % os.environ.get('COREL_PORT', '8000'), timeout=4)"]
CMD ["python", "-m", "service", "--host", "0.0.0.0"]

# The venv (changes with the dependencies), then the code and the default model (change often).
# Owned by root and read-only to the service user; only /data is the service's to write.
COPY --from=builder /opt/venv /opt/venv
COPY corel /app/corel
COPY service /app/service
COPY models/fashion-mnist-cosine /app/models/fashion-mnist-cosine
