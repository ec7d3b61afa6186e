"""All service settings, read from environment variables prefixed `COREL_`."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO = Path(__file__).resolve().parent.parent
DEFAULT_BUNDLE = REPO / "models" / "fashion-mnist-cosine"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="COREL_", extra="ignore")

    # model and storage
    bundle_path: Path = Field(DEFAULT_BUNDLE, description="Model bundle folder to serve")
    data_dir: Path = Field(Path("data"), description="SQLite store, index snapshots, classes")
    provider: Literal["auto", "cpu", "cuda"] = Field(
        "auto", description="onnxruntime execution provider; auto: CUDA when offered, else CPU")
    index_kind: Literal["flat", "hnsw"] = Field("flat", description="Item index: exact or HNSW")
    # server
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    api_key: SecretStr | None = Field(None, description="Bearer key for all but health/metrics")
    # micro-batching
    batching: bool = Field(True, description="Coalesce concurrent requests into one run")
    max_batch_size: int = Field(128, ge=1, le=4096)
    max_wait_ms: float = Field(2.0, ge=0, le=1000)
    queue_size: int = Field(2048, ge=1, description="Queued items beyond this answer 429")
    queue_timeout_ms: float = Field(5000, gt=0, description="Queued longer than this: 503")
    # request limits
    max_inputs_per_request: int = Field(1024, ge=1)
    max_body_bytes: int = Field(16 * 1024 * 1024, ge=1024)
    max_image_pixels: int = Field(4096 * 4096, ge=1)
    max_k: int = Field(100, ge=1)
    unknown_threshold: float | None = Field(
        None, description="Global unknown threshold; default: per-class calibrated thresholds")

    @field_validator("api_key")
    @classmethod
    def _key_not_trivial(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 16:
            raise ValueError("COREL_API_KEY must be at least 16 characters (or unset)")
        return value

    @field_validator("data_dir")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        return value.resolve()
