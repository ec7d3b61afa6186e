#!/usr/bin/env bash
# End-to-end check of `docker compose --profile scale` (docs/scaling.md), as a user would run
# it: build, start Milvus, two service replicas and HAProxy, wait until HAProxy answers
# /readyz, then through HAProxy: add items, find them with /neighbors from every replica,
# imprint a class and see every replica use it; `docker kill -s KILL` one replica while
# items are written and check that every acknowledged one is there; then `down -v`.
#
#   bash scripts/compose_scale_smoke.sh
#
# Its own compose project (corel-scale-smoke) and port; containers and volumes are removed at
# the end (COREL_SMOKE_KEEP=1 leaves them). Takes several minutes; not part of CI. Needs
# docker with `docker compose` and python3 on the host.
set -euo pipefail
cd "$(dirname "$0")/.."

PROJECT=${COREL_SMOKE_PROJECT:-corel-scale-smoke}
PORT=${COREL_SMOKE_PORT:-18080}
TIMEOUT=${COREL_SMOKE_TIMEOUT:-600}  # seconds to wait for the load balancer to answer
export COREL_SCALE_HOST_PORT=$PORT COREL_BIND=127.0.0.1 COREL_API_KEY=
compose() { docker compose -p "$PROJECT" -f docker-compose.yml --profile scale "$@"; }
BASE=http://127.0.0.1:$PORT

START=$SECONDS
step() { printf '\n[scale smoke %3ds] %s\n' $((SECONDS - START)) "$*"; }
fail() { printf '\n[scale smoke] FAIL: %s\n' "$*" >&2; exit 1; }
cleanup() {
  status=$?
  if ((status != 0)); then compose logs --no-color --tail 40 >&2 || true; fi
  if [[ ${COREL_SMOKE_KEEP:-0} == 1 ]]; then
    echo "[scale smoke] COREL_SMOKE_KEEP=1: left project $PROJECT running"
  else
    compose down -v --remove-orphans >/dev/null 2>&1 || true
  fi
  if ((status == 0)); then echo "[scale smoke] PASS in $((SECONDS - START)) s"; fi
}
trap cleanup EXIT

step "build and start: milvus, 2 replicas, lb"
compose build milvus corel-replica lb  # not the default profile's images
compose up -d lb
deadline=$((SECONDS + TIMEOUT))
until curl -fs "$BASE/readyz" >/dev/null 2>&1; do
  ((SECONDS < deadline)) || fail "the load balancer did not answer /readyz within $TIMEOUT s"
  sleep 3
done
replicas=$(compose ps -q corel-replica | wc -l)
((replicas == 2)) || fail "$replicas replicas running, expected 2"

step "items and classes through HAProxy, seen by every replica"
python3 - "$BASE" <<'PY'
import json, random, sys, threading, time, urllib.error, urllib.request

BASE = sys.argv[1]


def call(method, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(BASE + path, data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            text = resp.read().decode()
            return resp.status, json.loads(text) if text else None
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def vector(seed):
    rng = random.Random(seed)
    return [rng.gauss(0, 1) for _ in range(128)]


status, _ = call("POST", "/items", {"items": [{"id": "anchor", "vector": vector(0)}]})
assert status == 201, status
status, _ = call("POST", "/items", {"items": [{"id": "near", "vector": vector(0)}]})
assert status == 201, status
time.sleep(1)
# leastconn over 2 replicas: 10 calls reach both; every one must list the item
for _ in range(10):
    status, found = call("GET", "/neighbors?id=anchor&k=5")
    assert status == 200 and "near" in [n["id"] for n in found["neighbors"]], found
print("an item written through the load balancer is found by every replica")

blank = {"data": [[0] * 28 for _ in range(28)]}
status, _ = call("POST", "/classes", {"name": "blank", "inputs": [blank]})
assert status == 201, status
time.sleep(1.5)
for _ in range(10):
    status, out = call("POST", "/classify", {"inputs": [blank]})
    assert status == 200 and out["results"][0]["label"] == "blank", out
print("a class imprinted through one replica is used by every replica")
PY

step "kill -9 of one replica under 4 writers"
victim=$(compose ps -q corel-replica | head -1)
python3 - "$BASE" "$victim" <<'PY'
import json, subprocess, sys, threading, time, urllib.error, urllib.request

BASE, VICTIM = sys.argv[1], sys.argv[2]
acked, lock, stop = [], threading.Lock(), threading.Event()


def post(item_id):
    body = json.dumps({"items": [{"id": item_id, "vector": [1.0] * 127 + [0.5]}]}).encode()
    req = urllib.request.Request(BASE + "/items", data=body, method="POST",
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status
    except (urllib.error.HTTPError, OSError) as err:
        return getattr(err, "code", None)


def writer(w):
    n = 0
    while not stop.is_set():
        item_id = f"k{w}-{n}"
        n += 1
        if post(item_id) == 201:
            with lock:
                acked.append(item_id)


threads = [threading.Thread(target=writer, args=(w,)) for w in range(4)]
for t in threads:
    t.start()
while len(acked) < 40:
    time.sleep(0.05)
subprocess.run(["docker", "kill", "-s", "KILL", VICTIM], check=True, capture_output=True)
time.sleep(3)  # HAProxy takes the dead replica out; writers go on through the other
stop.set()
for t in threads:
    t.join()
missing = []
for item_id in acked:
    req = urllib.request.Request(BASE + f"/items/{item_id}")
    try:
        urllib.request.urlopen(req, timeout=30).read()
    except urllib.error.HTTPError:
        missing.append(item_id)
print(f"{len(acked)} acknowledged, {len(missing)} missing after kill -9 of a replica")
sys.exit(1 if missing else 0)
PY
