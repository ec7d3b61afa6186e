"""A naive peer for the serving benchmark: the first version of an image classifier service
that someone writes with FastAPI and onnxruntime, to set our /classify beside.

It serves the same bundle and takes the same JSON as our POST /classify for images given as
pixel lists (`{"inputs": [{"data": [[...28 rows of 28 pixels...]]}]}`; other keys such as
`k` are ignored), and answers each input's nearest class by cosine and its score:
`{"results": [{"label": "Bag", "score": 0.97}]}`.

What makes it naive is what it leaves out, not any slowness put in on purpose:

- FastAPI's defaults throughout: the body parsed by the standard library's json and
  validated by a pydantic model, the answer a pydantic model that FastAPI serialises;
- no micro-batching: every request runs the model on its own inputs;
- one onnxruntime InferenceSession on the CPU with one intra-op thread, called directly from
  an `async def` endpoint: requests take turns on the model, which costs about 0.1 ms an
  image here, without a thread-pool hop per request. A plain `def` endpoint, FastAPI's
  advice for blocking calls, measured slower with this small model: 1,000-1,300 requests/s
  against 2,100-2,300 under wrk at concurrency 32 on 2 cores; the faster is the peer;
- no input limits, error bodies, metrics, open-set checks or imprinted classes.

    python -m uvicorn naive_peer:app --app-dir benchmarks --host 127.0.0.1 --port 8001

The bundle is COREL_BUNDLE_PATH, as for the service (default: the shipped model).
benchmarks/serve_throughput.py starts it beside the service and loads both alike.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
from fastapi import FastAPI
from pydantic import BaseModel, Field

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # importable by uvicorn from any folder

from corel.bundle import load_bundle  # noqa: E402

bundle = load_bundle(
    Path(os.environ.get("COREL_BUNDLE_PATH", ROOT / "models" / "fashion-mnist-cosine"))
)
options = ort.SessionOptions()
options.intra_op_num_threads = 1
session = ort.InferenceSession(
    str(bundle.encoder_path), options, providers=["CPUExecutionProvider"]
)
input_name = session.get_inputs()[0].name
class_vectors = bundle.class_vectors / np.linalg.norm(bundle.class_vectors, axis=1, keepdims=True)
labels = bundle.manifest.labels

app = FastAPI(title="naive peer")


class ImageInput(BaseModel):
    data: list[list[float]]  # 28 rows of 28 pixels, 0..255


class ClassifyRequest(BaseModel):
    inputs: list[ImageInput] = Field(min_length=1)


class Prediction(BaseModel):
    label: str
    score: float


class ClassifyResponse(BaseModel):
    results: list[Prediction]


@app.post("/classify")
async def classify(body: ClassifyRequest) -> ClassifyResponse:
    pixels = np.array([item.data for item in body.inputs], dtype=np.float32)
    x = bundle.manifest.input.to_model(pixels[:, None])  # (N, 1, 28, 28), the bundle's scaling
    embedding = session.run(["embedding"], {input_name: x})[0]
    embedding /= np.linalg.norm(embedding, axis=1, keepdims=True)
    scores = embedding @ class_vectors.T
    best = scores.argmax(axis=1)
    return ClassifyResponse(
        results=[
            Prediction(label=labels[b], score=float(s[b]))
            for b, s in zip(best, scores, strict=True)
        ]
    )
