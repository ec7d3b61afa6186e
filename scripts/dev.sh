#!/usr/bin/env bash
# One entry point for a fresh Debian machine with Python 3.11: each command sets up what it
# needs (Debian packages, a virtual environment in .venv, pip packages), then runs.
#
#   bash scripts/dev.sh serve          # the service on the shipped default model (no torch)
#   bash scripts/dev.sh test           # the gates, then the whole test suite (what CI runs)
#   bash scripts/dev.sh test -m "not slow"   # the same with the fast lane of the suite
#   bash scripts/dev.sh check          # the gates alone: ruff format, ruff check, mypy --strict
#   bash scripts/dev.sh train-default  # retrain models/fashion-mnist-cosine (about 10 min)
#   bash scripts/dev.sh train-text     # retrain models/wordnet-cosine (a few minutes)
#   bash scripts/dev.sh install-gpu    # swap onnxruntime/faiss-cpu for their GPU builds
#
# Set-up is idempotent and skipped when nothing changed (a stamp in .venv records it).
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${COREL_VENV:-.venv}
PYTHON=${PYTHON:-python3}
FASHION_DIR=${COREL_FASHION_MNIST_DIR:-/usr/share/datasets/fashion-mnist}
SUDO=$([[ $(id -u) == 0 ]] && echo "" || echo "sudo")

say() { echo "[dev.sh] $*" >&2; }

apt_install() {
  say "installing Debian packages: $*"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "$@" >/dev/null
}

ensure_python() {
  if ! "$PYTHON" -c 'import sys; assert sys.version_info >= (3, 11)' 2>/dev/null; then
    echo "error: $PYTHON must be Python 3.11 or newer (set PYTHON=...)" >&2
    exit 1
  fi
  "$PYTHON" -c 'import venv, ensurepip' 2>/dev/null || apt_install python3-venv
}

ensure_fashion_mnist() {
  [[ -f $FASHION_DIR/t10k-images-idx3-ubyte.gz ]] && return
  if [[ $FASHION_DIR == /usr/share/datasets/fashion-mnist ]]; then
    apt_install dataset-fashion-mnist
  else
    echo "error: no Fashion-MNIST in COREL_FASHION_MNIST_DIR=$FASHION_DIR" >&2
    exit 1
  fi
}

# The text corpora training and its tests read: WordNet's noun glosses and the fortunes
# (training/text.py), unless COREL_WORDNET_DIR / COREL_FORTUNES_DIR point elsewhere.
ensure_text_corpora() {
  local missing=()
  [[ -f ${COREL_WORDNET_DIR:-/usr/share/wordnet}/data.noun ]] || missing+=(wordnet-base)
  [[ -f ${COREL_FORTUNES_DIR:-/usr/share/games/fortunes}/computers ]] || missing+=(fortunes)
  if ((${#missing[@]})); then apt_install "${missing[@]}"; fi
}

# ensure_venv EXTRAS: install the project with those extras ("" for the serving set only).
ensure_venv() {
  local extras=$1 stamp want
  ensure_python
  [[ -x $VENV/bin/python ]] || "$PYTHON" -m venv "$VENV"
  stamp=$VENV/.corel-installed
  want="$(sha256sum pyproject.toml | cut -c1-16) [$extras]"
  if [[ -f $stamp ]] && grep -qxF -- "$want" "$stamp"; then return; fi
  say "installing Python packages into $VENV (extras: ${extras:-none})"
  "$VENV/bin/python" -m pip install -q --upgrade pip
  if [[ -n $extras ]]; then
    "$VENV/bin/python" -m pip install -q -e ".[$extras]"
  else
    "$VENV/bin/python" -m pip install -q -e .
  fi
  echo "$want" >> "$stamp"
}

# The quality gates, each named as it runs; the first that fails stops the command.
run_gates() {
  say "gate: ruff format --check"
  "$VENV/bin/ruff" format --check --quiet .
  say "gate: ruff check"
  "$VENV/bin/ruff" check --quiet .
  say "gate: mypy --strict (corel, service, training, harness)"
  "$VENV/bin/mypy"
}

cmd=${1:-help}
shift || true
case $cmd in
  serve)
    ensure_venv ""
    exec "$VENV/bin/python" -m service "$@"
    ;;
  check)
    ensure_venv "train,dev,milvus,milvus-server,milvus-lite,glove"
    run_gates
    ;;
  test)
    ensure_fashion_mnist
    ensure_text_corpora
    # the item search benchmark's test drives the real server with wrk (a C load generator)
    command -v wrk >/dev/null || apt_install wrk
    # the web page's tests drive Debian's chromium with Playwright (tests/service/web)
    command -v chromium >/dev/null || apt_install chromium
    # the milvus extras: the store tests run against a real milvus-server (harness/milvus.py),
    # and one against Milvus Lite (tests/service/test_milvus_lite.py); glove: the GloVe vectors
    # that --word-vectors glove-6b-50d starts from (tests/training/test_word_vectors.py)
    ensure_venv "train,dev,milvus,milvus-server,milvus-lite,glove"
    run_gates
    # pytest exits 5 when it collected no test: that is a failure here, not a pass.
    set +e
    "$VENV/bin/python" -m pytest "$@"
    status=$?
    set -e
    if [[ $status == 5 ]]; then echo "error: pytest collected no tests" >&2; fi
    exit $status
    ;;
  train-default)
    ensure_fashion_mnist
    ensure_venv "train,dev"
    exec "$VENV/bin/corel-train" --preset fashion-mnist-cosine --out models/fashion-mnist-cosine "$@"
    ;;
  train-text)
    ensure_text_corpora
    ensure_venv "train,dev"
    exec "$VENV/bin/corel-train" --preset wordnet-cosine --out models/wordnet-cosine "$@"
    ;;
  install-gpu)
    ensure_venv ""
    say "replacing onnxruntime and faiss-cpu with onnxruntime-gpu and faiss-gpu-cu12"
    "$VENV/bin/python" -m pip uninstall -y -q onnxruntime faiss-cpu
    "$VENV/bin/python" -m pip install -q "onnxruntime-gpu<1.27" faiss-gpu-cu12  # one CUDA major (12)
    ;;
  *)
    sed -n '2,13p' "$0"
    exit 2
    ;;
esac
