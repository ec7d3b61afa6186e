# The COREL embedding service: a serving image with onnxruntime + FAISS and the default model.
#
#   docker build -t corel-embed:cpu .                          # CPU (default)
#   docker build -t corel-embed:gpu --build-arg VARIANT=gpu .  # CUDA 12: onnxruntime-gpu, faiss-gpu-cu12
#
# No torch and no training code: the venv holds the base dependencies of pyproject.toml only
# (the serving stack), the image holds service/ and models/fashion-mnist-cosine. The variant is
# a build argument rather than a stage per variant because the classic builder (what
# docker-compose v1 and Docker 20.10 use) builds every stage before the target, so a GPU stage
# would be downloaded on every CPU build. The GPU variant takes CUDA and cuDNN from NVIDIA's pip
# wheels; the driver comes from the host through the NVIDIA container toolkit.

ARG BASE_IMAGE=python:3.11-slim-bookworm

# ---------------------------------------------------------------------------- builder
FROM ${BASE_IMAGE} AS builder
ARG VARIANT=cpu
# One CUDA major for the whole GPU image: faiss-gpu-cu12 is built for CUDA 12, and
# onnxruntime-gpu 1.27 and later are built for CUDA 13 (drivers >= 580), so keep ORT on 1.26.
ARG GPU_CONSTRAINTS="onnxruntime-gpu<1.27"
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

# Only pyproject.toml: this layer (the slow one) is rebuilt when the dependencies change, not
# when the code does. The requirements are read from pyproject's base dependencies, so they live
# in one place; the GPU variant swaps onnxruntime and faiss-cpu for the `gpu` extra (they cannot
# be installed side by side) and takes CUDA/cuDNN wheels through onnxruntime-gpu[cuda,cudnn].
# Then it trims what serving never runs (pip, setuptools, the numpy/scipy/scikit-learn test
# suites: ~100 MB with their bytecode) and compiles the rest, so a read-only container starts
# without compiling.
COPY pyproject.toml /tmp/pyproject.toml
RUN set -eux; \
    case "$VARIANT" in cpu|gpu) ;; *) echo "VARIANT must be cpu or gpu, not $VARIANT" >&2; exit 1;; esac; \
    python -c 'import re, sys, tomllib; \
project = tomllib.load(open("/tmp/pyproject.toml", "rb"))["project"]; \
deps = project["dependencies"]; \
name = lambda req: re.split(r"[\s\[<>=!~;]", req, maxsplit=1)[0].lower(); \
gpu = [re.sub(r"^onnxruntime-gpu(?=[^\w\[-]|$)", "onnxruntime-gpu[cuda,cudnn]", r) \
       for r in project["optional-dependencies"]["gpu"]]; \
deps = [d for d in deps if name(d) not in ("onnxruntime", "faiss-cpu")] + gpu \
       if sys.argv[1] == "gpu" else deps; \
print("\n".join(deps))' "$VARIANT" > /tmp/requirements.txt; \
    if [ "$VARIANT" = gpu ]; then echo "$GPU_CONSTRAINTS" | tr ' ' '\n'; fi > /tmp/constraints.txt; \
    cat /tmp/requirements.txt /tmp/constraints.txt; \
    python -m venv /opt/venv; \
    /opt/venv/bin/pip install --upgrade pip; \
    /opt/venv/bin/pip install -r /tmp/requirements.txt -c /tmp/constraints.txt; \
    /opt/venv/bin/pip uninstall -y setuptools pip; \
    if [ "$VARIANT" = gpu ]; then \
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
FROM ${BASE_IMAGE} AS runtime
ARG VARIANT=cpu
LABEL org.opencontainers.image.title="corel-embed" \
      org.opencontainers.image.description="COREL embedding service (FastAPI, onnxruntime, FAISS)"

# A fixed, unprivileged uid so a bind-mounted data directory can be chowned to it (10001).
RUN set -eux; \
    groupadd --system --gid 10001 corel; \
    useradd --system --uid 10001 --gid corel --home-dir /app --no-create-home \
            --shell /usr/sbin/nologin corel; \
    mkdir -p /data; \
    chown corel:corel /data

COPY --from=builder /opt/venv /opt/venv
WORKDIR /app
COPY service /app/service
COPY models/fashion-mnist-cosine /app/models/fashion-mnist-cosine

# /opt/venv/cuda/lib holds links to the CUDA and cuDNN libraries of the GPU variant; it does not
# exist in the CPU image, where the entry is harmless.
ENV PATH=/opt/venv/bin:$PATH \
    LD_LIBRARY_PATH=/opt/venv/cuda/lib \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONPATH=/app \
    COREL_IMAGE_VARIANT=${VARIANT} \
    COREL_BUNDLE_PATH=/app/models/fashion-mnist-cosine \
    COREL_DATA_DIR=/data \
    COREL_PORT=8000

USER corel
VOLUME ["/data"]
EXPOSE 8000

# Ready means model loaded, warmed up and indexes built (503 before). urllib raises on any
# status but 2xx, so the exit code says it all; the base image has no curl.
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request as u; u.urlopen('http://127.0.0.1:%s/readyz' % os.environ.get('COREL_PORT', '8000'), timeout=4)"]

CMD ["python", "-m", "service", "--host", "0.0.0.0"]
