#!/usr/bin/env bash
# End-to-end check of the Docker image and docker-compose.yml, as a user would run them:
# build, `up`, wait for healthy, classify real Fashion-MNIST test images (as pixel arrays and
# as a PNG), add items, restart the container and recreate it on the same volume and read the
# items back, check the API key and /metrics, then `down`. Fails loudly at the first problem.
#
#   bash scripts/compose_smoke.sh
#
# It runs as its own compose project (corel-smoke) on its own port, so it never touches the
# volume of a `docker compose up` of yours, and removes its containers and volumes at the end
# (COREL_SMOKE_KEEP=1 leaves them). Takes a few minutes; not part of CI. Needs docker with
# `docker compose`, python3 on the host, and Debian's dataset-fashion-mnist.
set -euo pipefail
cd "$(dirname "$0")/.."

PROJECT=${COREL_SMOKE_PROJECT:-corel-smoke}
PORT=${COREL_SMOKE_PORT:-18000}
TIMEOUT=${COREL_SMOKE_TIMEOUT:-180}            # seconds to wait for healthy, each time
FASHION_DIR=${COREL_FASHION_MNIST_DIR:-/usr/share/datasets/fashion-mnist}
API_KEY=smoke-$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')

export COREL_HOST_PORT=$PORT COREL_BIND=127.0.0.1 COREL_API_KEY=$API_KEY
compose() { docker compose -p "$PROJECT" -f docker-compose.yml "$@"; }

START=$SECONDS
step() { printf '\n[smoke %3ds] %s\n' $((SECONDS - START)) "$*"; }
fail() { printf '\n[smoke] FAIL: %s\n' "$*" >&2; exit 1; }
now() { date +%s.%N; }
elapsed() { python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.1f}')" "$@"; }

WORK=$(mktemp -d)
cleanup() {
  status=$?
  if ((status != 0)); then
    echo "[smoke] --- last container logs ---" >&2
    compose logs --no-color --tail 60 corel >&2 || true
  fi
  if [[ ${COREL_SMOKE_KEEP:-0} == 1 ]]; then
    echo "[smoke] COREL_SMOKE_KEEP=1: left project $PROJECT running (compose -p $PROJECT down -v)"
  else
    compose down -v --remove-orphans >/dev/null 2>&1 || true
  fi
  rm -rf "$WORK"
  if ((status == 0)); then echo "[smoke] PASS in $((SECONDS - START)) s"; else echo "[smoke] FAILED (exit $status)" >&2; fi
}
trap cleanup EXIT

# A small HTTP client for the checks below: python3's standard library only.
cat >"$WORK/client.py" <<'PY'
"""Smoke-test client: `client.py BASE KEY COMMAND [ARGS]`; exits non-zero with a message."""
import base64, gzip, json, os, re, struct, sys, urllib.error, urllib.request, zlib

BASE, KEY, CMD, ARGS = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
FASHION = os.environ["FASHION_DIR"]


def call(method, path, body=None, key=KEY, expect=(200, 201, 204)):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(BASE + path, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    if key:
        req.add_header("Authorization", f"Bearer {key}")
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            status, text = resp.status, resp.read().decode()
    except urllib.error.HTTPError as err:
        status, text = err.code, err.read().decode()
    if status not in expect:
        sys.exit(f"{method} {path}: HTTP {status}, expected {expect}: {text[:500]}")
    return status, (json.loads(text) if text and text[0] in "[{" else text)


def test_images(n):
    """The first n Fashion-MNIST test images (28x28 uint8) and labels, from the IDX files."""
    with gzip.open(f"{FASHION}/t10k-images-idx3-ubyte.gz") as f:
        magic, count, rows, cols = struct.unpack(">IIII", f.read(16))
        assert magic == 2051 and (rows, cols) == (28, 28), "not an IDX image file"
        pixels = f.read(n * 784)
    with gzip.open(f"{FASHION}/t10k-labels-idx1-ubyte.gz") as f:
        f.read(8)
        labels = list(f.read(n))
    images = [[list(pixels[i * 784 + r * 28:i * 784 + r * 28 + 28]) for r in range(28)]
              for i in range(n)]
    return images, labels


def png(image):
    """8-bit grayscale PNG of a 28x28 image, with zlib and struct only."""
    def chunk(kind, data):
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
    raw = b"".join(b"\x00" + bytes(row) for row in image)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 28, 28, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def top_label(result):
    return result["label"]


def ready():
    try:
        with urllib.request.urlopen(BASE + "/readyz", timeout=2) as resp:
            return resp.status == 200
    except (OSError, urllib.error.HTTPError):
        return False


if CMD == "ready":
    sys.exit(0 if ready() else 1)

elif CMD == "model":
    _, model = call("GET", "/model")
    manifest = model["manifest"]
    print(f"model {manifest['name']!r} ({manifest['class_rule']}, D={manifest['embedding_dim']}, "
          f"{len(manifest['labels'])} classes), provider {model['provider']}, "
          f"indexes {json.dumps(model['indexes'])}")
    if "CPU" not in model["provider"].upper():
        sys.exit(f"the CPU image reports provider {model['provider']!r}")

elif CMD == "auth":
    status, body = call("GET", "/model", key="", expect=(401,))
    print(f"/model without the key: {status} {json.dumps(body)[:160]}")

elif CMD == "classify":
    n = int(ARGS[0])
    _, model = call("GET", "/model")
    names = model["manifest"]["labels"]
    images, labels = test_images(n)
    _, out = call("POST", "/classify", {"inputs": [{"data": im} for im in images]})
    results = out["results"]
    assert len(results) == n, f"{len(results)} results for {n} inputs"
    got = [top_label(r) for r in results]
    first = results[0]
    print(f"test image 0: true {names[labels[0]]!r}, predicted {got[0]!r}, "
          f"score {first['score']:.3f}, margin {first['margin']:.3f}, unknown {first['unknown']}")
    if got[0] != names[labels[0]]:
        sys.exit(f"test image 0 is a {names[labels[0]]!r}, the service says {got[0]!r}")
    correct = sum(g == names[y] for g, y in zip(got, labels))
    print(f"accuracy on the first {n} test images: {correct}/{n}")
    if correct < 0.8 * n:
        sys.exit(f"only {correct}/{n} correct: the model or the preprocessing is wrong")
    # The same image as a base64 PNG must give the same answer.
    encoded = base64.b64encode(png(images[0])).decode()
    _, out = call("POST", "/classify", {"inputs": [{"image": encoded}]})
    results = out["results"]
    print(f"test image 0 as PNG: predicted {top_label(results[0])!r}")
    if top_label(results[0]) != got[0]:
        sys.exit("the PNG of test image 0 was classified differently from its pixel array")

elif CMD == "add-items":
    images, labels = test_images(3)
    items = [{"id": f"smoke-{i}", "input": {"data": images[i]}, "label": f"class-{labels[i]}",
              "metadata": {"source": "compose_smoke", "index": i}} for i in range(3)]
    status, out = call("POST", "/items", {"items": items})
    stored = out["items"] if isinstance(out, dict) else out
    print(f"POST /items: {status}, ids {[item['id'] for item in stored]}")

elif CMD == "check-items":
    for i in range(3):
        _, item = call("GET", f"/items/smoke-{i}")
        if (item["id"] != f"smoke-{i}" or item["metadata"].get("index") != i
                or not item["label"].startswith("class-")):
            sys.exit(f"item smoke-{i} came back wrong: {item}")
    call("GET", "/items/smoke-missing", expect=(404,))
    _, page = call("GET", "/items?limit=10")
    if page["total"] != 3:
        sys.exit(f"GET /items: total {page['total']}, expected the 3 smoke items")
    print("items smoke-0..2 present with their label and metadata (3 in all); "
          "an unknown id gives 404")

elif CMD == "metrics":
    # ARGS: `NAME{label="value",...}>=N`: the samples of that name carrying those labels (any
    # order, others allowed) must exist and, with `>=N`, sum to at least N.
    def parse(series):
        name, _, labels = series.partition("{")
        return name, dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', labels))
    _, text = call("GET", "/metrics", key="")
    samples = []
    for line in text.splitlines():
        if line and not line.startswith("#"):
            series, value = line.rsplit(" ", 1)
            samples.append((*parse(series), float(value)))
    print(f"/metrics: {len(samples)} samples")
    for want in ARGS:
        series, _, least = want.partition(">=")
        name, labels = parse(series)
        hits = [v for n, ls, v in samples if n == name and labels.items() <= ls.items()]
        if not hits:
            sys.exit(f"/metrics has no series {series}")
        print(f"  {series}: {len(hits)} samples, sum {sum(hits):g}")
        if least and sum(hits) < float(least):
            sys.exit(f"/metrics: {series} sums to {sum(hits):g}, expected at least {least}")

else:
    sys.exit(f"unknown command {CMD}")
PY
client() { FASHION_DIR=$FASHION_DIR python3 "$WORK/client.py" "http://127.0.0.1:$PORT" "$API_KEY" "$@"; }

# wait_healthy LABEL T0: waits for docker to report the corel container healthy, noting when
# /readyz first answered 200; prints both times since T0 (taken before `up` or `restart`, so
# they include creating and starting the container); fails on timeout or exit.
wait_healthy() {
  local t0=$2 t_ready="" cid health state
  while :; do
    cid=$(compose ps -q corel)
    [[ -n $cid ]] || fail "$1: no corel container"
    state=$(docker inspect -f '{{.State.Status}}' "$cid")
    health=$(docker inspect -f '{{if .State.Health}}{{.State.Health.Status}}{{end}}' "$cid")
    [[ $state == running || $state == restarting || $state == created ]] ||
      fail "$1: the container is $state"
    [[ -n $health ]] || fail "$1: the container has no healthcheck"
    [[ $health != unhealthy ]] || fail "$1: the container is unhealthy"
    if [[ -z $t_ready ]] && client ready; then t_ready=$(now); fi
    if [[ $health == healthy ]]; then
      [[ -n $t_ready ]] || t_ready=$(now)
      echo "$1: /readyz 200 after $(elapsed "$t0" "$t_ready") s, docker healthy after $(elapsed "$t0" "$(now)") s (since the command)"
      return
    fi
    (($(printf '%.0f' "$(elapsed "$t0" "$(now)")") < TIMEOUT)) || fail "$1: not healthy after $TIMEOUT s"
    sleep 0.5
  done
}

step "prerequisites"
docker info >/dev/null 2>&1 || fail "docker is not running (here: ../shared/tools/docker-here.sh)"
docker compose version >/dev/null 2>&1 || fail "no 'docker compose'"
[[ -f $FASHION_DIR/t10k-images-idx3-ubyte.gz ]] ||
  fail "no Fashion-MNIST test set in $FASHION_DIR (apt-get install dataset-fashion-mnist)"
compose config -q
compose down -v --remove-orphans >/dev/null 2>&1 || true

step "build (docker compose build corel)"
t=$(now)
compose build corel
image=$(compose config | python3 -c 'import re, sys; print(re.search(r"image: (\S+:cpu)", sys.stdin.read()).group(1))')
size=$(docker image inspect -f '{{.Size}}' "$image")
echo "built $image in $(elapsed "$t" "$(now)") s: $((size / 1000000)) MB"

step "up (docker compose up -d corel) and wait for healthy"
t=$(now)
compose up -d corel
wait_healthy "first start" "$t"
cid=$(compose ps -q corel)
uid=$(docker exec "$cid" id -u)
[[ $uid != 0 ]] || fail "the service runs as root"
echo "runs as uid $uid; data volume: $(docker inspect -f '{{range .Mounts}}{{.Name}}:{{.Destination}} {{end}}' "$cid")"

step "model, API key"
client model
client auth

step "classify real Fashion-MNIST test images"
client classify 100

step "metrics (two /classify calls: 100 + 1 inputs)"
client metrics 'corel_requests_total{method="POST",route="/classify",status="200"}>=2' \
  'corel_request_seconds_count{method="POST",route="/classify",status="200"}>=2' \
  'corel_batch_size_sum>=101' corel_queue_wait_seconds_count corel_inference_seconds_count \
  'corel_classified_total>=101' corel_classify_best_score_bucket corel_classify_margin_bucket \
  corel_queue_items

step "add items"
client add-items
client check-items

step "restart the container (docker compose restart corel)"
t=$(now)
compose restart corel
wait_healthy "after restart" "$t"
client check-items

step "recreate the container on the same volume (down, then up)"
compose down
t=$(now)
compose up -d corel
wait_healthy "after recreate" "$t"
client check-items

step "metrics (this container: three GETs of items, one 404)"
client metrics 'corel_requests_total{method="GET",route="/items/{item_id}",status="200"}>=3' \
  'corel_requests_total{method="GET",route="/items/{item_id}",status="404"}>=1' \
  'corel_request_seconds_count{method="GET",route="/items/{item_id}"}>=4' \
  'corel_index_size{index="items"}>=3'

step "down"
compose down -v --remove-orphans
