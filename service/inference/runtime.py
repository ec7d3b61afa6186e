"""The encoder: one onnxruntime session on CUDA when asked for and offered, else the CPU."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import onnxruntime as ort

from corel.bundle import InputSpec

log = logging.getLogger(__name__)

CUDA, CPU = "CUDAExecutionProvider", "CPUExecutionProvider"


def choose_providers(setting: str, available: list[str]) -> list[str]:
    """`cuda` insists on CUDA; `auto` takes it when onnxruntime offers it; `cpu` never does."""
    if setting == "cuda":
        if CUDA not in available:
            raise RuntimeError(
                f"COREL_PROVIDER=cuda but onnxruntime offers only {available}; install the GPU "
                "build (bash scripts/dev.sh install-gpu) or use COREL_PROVIDER=auto"
            )
        return [CUDA, CPU]
    if setting == "auto" and CUDA in available:
        return [CUDA, CPU]
    if setting == "auto":
        log.info(
            "onnxruntime offers no CUDAExecutionProvider (%s): running on the CPU",
            ", ".join(available),
        )
    return [CPU]


def session_options(threads: int) -> ort.SessionOptions:
    """CPU threading for a server process: the event loop needs a core between runs.

    `threads` 0 means all cores but one (at least one). Spinning is off: onnxruntime's
    idle threads would otherwise busy-wait after every run on the core that parses the
    next requests (measured here: no gain from spinning, large losses on shared cores).
    """
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or max(1, (os.cpu_count() or 1) - 1)
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    return options


class EncoderRuntime:
    def __init__(self, onnx_path: Path, *, provider: str = "auto", threads: int = 0) -> None:
        providers = choose_providers(provider, ort.get_available_providers())
        self.threads = session_options(threads).intra_op_num_threads
        self.session = ort.InferenceSession(
            str(onnx_path), session_options(threads), providers=providers
        )
        # onnxruntime falls back to the CPU silently when CUDA libraries fail to load
        self.provider: str = self.session.get_providers()[0]
        if providers[0] == CUDA and self.provider != CUDA:
            log.warning("CUDA was requested but onnxruntime fell back to %s", self.provider)
        log.info("encoder %s on %s (%d CPU threads)", onnx_path, self.provider, self.threads)
        # Format-2 bundles may have a second output, `features`: run() returns it beside the
        # embedding, as columns D: of one array, so the micro-batcher stays one-array-in,
        # one-array-out (Embedder splits them again)
        self.outputs = [o.name for o in self.session.get_outputs()]

    def run(self, batch: np.ndarray, *, features: bool = True) -> np.ndarray:
        """(N, ...) -> (N, D), or (N, D + F) with `features` when the encoder has them."""
        outs = self.session.run(self.outputs if features else self.outputs[:1], {"input": batch})
        return np.asarray(outs[0] if len(outs) == 1 else np.hstack(outs))

    def warm_up(self, spec: InputSpec, max_batch_size: int) -> None:
        """Run the shapes traffic will use once, so the first request pays no set-up (for
        text, token ids of one length and of max_length)."""
        for n in sorted({1, max_batch_size}):
            if spec.kind == "text":
                for length in sorted({1, spec.shape[0]}):
                    self.run(np.full((n, length), spec.pad_id + 1, np.int64))
            else:
                self.run(np.zeros((n, *spec.shape), np.float32))
