"""Prometheus metrics: traffic, the batcher, the indexes, and the embedding space's health.

All live in prometheus-client's default registry, served at GET /metrics. Routes are
labelled by template (`/items/{item_id}`), never the raw path, so label values stay few.
The last three say whether the embedding space still fits the traffic: a falling best
score or margin, or a rising unknown rate for a class, is drift worth a look.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)

REQUESTS = Counter("corel_requests_total", "HTTP requests", ["method", "route", "status"])
REQUEST_SECONDS = Histogram(
    "corel_request_seconds",
    "HTTP request latency",
    ["method", "route", "status"],
    buckets=LATENCY_BUCKETS,
)
IN_FLIGHT = Gauge("corel_requests_in_flight", "HTTP requests being handled")
BATCH_SIZE = Histogram(
    "corel_batch_size", "Items per onnxruntime run", buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
)
QUEUE_SIZE = Gauge("corel_queue_items", "Items waiting in the inference queue")
QUEUE_WAIT_SECONDS = Histogram(
    "corel_queue_wait_seconds", "Time a job waited in the queue", buckets=LATENCY_BUCKETS
)
DROPPED = Counter("corel_queue_dropped_total", "Jobs dropped before inference", ["reason"])
INFERENCE_SECONDS = Histogram(
    "corel_inference_seconds", "onnxruntime run time", buckets=LATENCY_BUCKETS
)
INDEX_SIZE = Gauge("corel_index_size", "Vectors in an index", ["index"])
INDEX_DELTA = Gauge(
    "corel_index_delta_vectors", "Item vectors added since the main index was built (exact)"
)
INDEX_JOBS = Counter(
    "corel_index_jobs_total", "Background item index merges and rebuilds", ["job", "outcome"]
)
INDEX_JOB_SECONDS = Histogram(
    "corel_index_job_seconds",
    "Duration of a background item index job, snapshot included",
    ["job"],
    buckets=(0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600),
)
INDEX_JOB_PROGRESS = Gauge(
    "corel_index_job_progress", "Share of vectors done by the running index job (1: idle)"
)
BEST_SCORE = Histogram(
    "corel_classify_best_score",
    "Best class score per classified input",
    buckets=(-1, 0, 0.2, 0.4, 0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 0.98, 1),
)
MARGIN = Histogram(
    "corel_classify_margin",
    "Best minus second-best class score",
    buckets=(0, 0.01, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1, 1.5, 2),
)
CLASSIFIED = Counter(
    "corel_classified_total", "Classified inputs by predicted class", ["label", "unknown"]
)
