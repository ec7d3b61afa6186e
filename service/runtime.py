"""The encoder: one onnxruntime session on CUDA when asked for and offered, else the CPU."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import onnxruntime as ort

log = logging.getLogger(__name__)

CUDA, CPU = "CUDAExecutionProvider", "CPUExecutionProvider"


def choose_providers(setting: str, available: list[str]) -> list[str]:
    """`cuda` insists on CUDA; `auto` takes it when onnxruntime offers it; `cpu` never does."""
    if setting == "cuda":
        if CUDA not in available:
            raise RuntimeError(
                f"COREL_PROVIDER=cuda but onnxruntime offers only {available}; install the GPU "
                "build (bash scripts/dev.sh install-gpu) or use COREL_PROVIDER=auto")
        return [CUDA, CPU]
    if setting == "auto" and CUDA in available:
        return [CUDA, CPU]
    if setting == "auto":
        log.info("onnxruntime offers no CUDAExecutionProvider (%s): running on the CPU",
                 ", ".join(available))
    return [CPU]


class EncoderRuntime:
    def __init__(self, onnx_path: Path, *, provider: str = "auto") -> None:
        providers = choose_providers(provider, ort.get_available_providers())
        self.session = ort.InferenceSession(str(onnx_path), providers=providers)
        # onnxruntime falls back to the CPU silently when CUDA libraries fail to load
        self.provider: str = self.session.get_providers()[0]
        if providers[0] == CUDA and self.provider != CUDA:
            log.warning("CUDA was requested but onnxruntime fell back to %s", self.provider)
        log.info("encoder %s on %s", onnx_path, self.provider)

    def run(self, batch: np.ndarray) -> np.ndarray:  # (N, ...) -> (N, D)
        return self.session.run(["embedding"], {"input": batch})[0]

    def warm_up(self, input_shape: list[int], max_batch_size: int) -> None:
        """Run the shapes traffic will use once, so the first request pays no set-up."""
        for n in sorted({1, max_batch_size}):
            self.run(np.zeros((n, *input_shape), np.float32))
