"""All service settings, read from environment variables prefixed `COREL_`.

`Settings()` refuses bad values when the service starts (a port out of range, a short API
key, a queue smaller than one batch...), so a misconfiguration never surfaces mid-request.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["DEFAULT_BUNDLE", "Settings", "is_lite_uri"]

REPO = Path(__file__).resolve().parent.parent
DEFAULT_BUNDLE = REPO / "models" / "fashion-mnist-cosine"


def is_lite_uri(uri: str) -> bool:
    """Whether a Milvus URI is a local file, which pymilvus opens with Milvus Lite inside
    this process, rather than a server's address (http://, https://, tcp://, unix:)."""
    return "://" not in uri and not uri.startswith("unix:")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="COREL_", extra="ignore")

    # model and storage
    bundle_path: Path = Field(DEFAULT_BUNDLE, description="Model bundle folder to serve")
    data_dir: Path = Field(Path("data"), description="SQLite store, index snapshots, classes")
    provider: Literal["auto", "cpu", "cuda"] = Field(
        "auto", description="onnxruntime execution provider; auto: CUDA when offered, else CPU"
    )
    threads: int = Field(
        0, ge=0, le=1024, description="onnxruntime CPU threads; 0: all cores but one"
    )
    store: Literal["embedded", "milvus"] = Field(
        "embedded",
        description="Items and classes: embedded (SQLite + FAISS in data_dir, one process) "
        "or milvus (shared by replicas, see docs/scaling.md)",
    )
    milvus_uri: str = Field(
        "http://127.0.0.1:19530",
        description="With store milvus: http://host:19530 (server or cluster), or a file "
        "path ending in .db (Milvus Lite in the process, needs the milvus-lite package)",
    )
    milvus_prefix: str = Field(
        "corel",
        pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}$",
        description="With store milvus: prefix of the collection names, one per deployment",
    )
    index_kind: Literal["auto", "flat", "hnsw", "ivf"] = Field(
        "auto", description="Item index: exact (flat), HNSW, IVF; auto: flat, HNSW when large"
    )
    index_auto_threshold: int = Field(
        50_000, ge=1, description="With index_kind auto: live items from which HNSW serves"
    )
    # server
    host: str = Field("127.0.0.1", description="Interface to bind (0.0.0.0 in the container)")
    port: int = Field(8000, ge=1, le=65535)
    workers: int = Field(
        1,
        ge=1,
        le=256,
        description="Server processes on the port; above 1 only with store milvus on a "
        "Milvus server (not Milvus Lite)",
    )
    log_level: Literal["critical", "error", "warning", "info", "debug"] = "info"
    api_key: SecretStr | None = Field(
        None, description="Bearer key for all but /healthz, /readyz, /metrics (and the docs)"
    )
    docs_require_key: bool = Field(
        False, description="/docs, /redoc and /openapi.json need the API key too"
    )
    # micro-batching
    batching: bool = Field(True, description="Coalesce concurrent requests into one run")
    max_batch_size: int = Field(128, ge=1, le=4096, description="Items per onnxruntime run")
    max_wait_ms: float = Field(2.0, ge=0, le=1000, description="Wait for company at most this long")
    queue_size: int = Field(2048, ge=1, description="Items waiting beyond this answer 429")
    queue_timeout_ms: float = Field(
        5000, gt=0, description="Items queued longer than this are dropped (503)"
    )
    # request limits
    max_inputs_per_request: int = Field(1024, ge=1, description="More inputs: 413")
    max_body_bytes: int = Field(16 * 1024 * 1024, ge=1024, description="Larger body: 413")
    header_timeout_s: float = Field(
        10, gt=0, description="Request headers not complete this long after connecting: 408"
    )
    body_timeout_s: float = Field(
        30, gt=0, description="A request body that stalls this long between parts: 408"
    )
    max_image_pixels: int = Field(4096 * 4096, ge=1, description="Larger decoded image: 413")
    max_k: int = Field(100, ge=1, description="Largest k a request may ask for")
    unknown_threshold: float | None = Field(
        None, description="Global unknown threshold; default: per-class calibrated thresholds"
    )

    @field_validator("api_key", mode="before")
    @classmethod
    def _empty_key_is_no_key(cls, value: Any) -> Any:
        # docker compose passes COREL_API_KEY="" when the variable is unset on the host
        return None if value in ("", None) else value

    @field_validator("api_key")
    @classmethod
    def _key_not_trivial(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 16:
            raise ValueError("COREL_API_KEY must be at least 16 characters (or unset)")
        return value

    @field_validator("log_level", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.lower() if isinstance(value, str) else value

    @field_validator("data_dir")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        return value.resolve()

    @model_validator(mode="after")
    def _queue_holds_a_batch(self) -> Settings:
        if self.queue_size < self.max_batch_size:
            raise ValueError(
                f"COREL_QUEUE_SIZE ({self.queue_size}) must be at least "
                f"COREL_MAX_BATCH_SIZE ({self.max_batch_size})"
            )
        return self

    @model_validator(mode="after")
    def _workers_share_a_store(self) -> Settings:
        if self.workers > 1 and self.store == "embedded":
            raise ValueError(
                f"COREL_WORKERS={self.workers} needs COREL_STORE=milvus: the embedded store "
                "is held by one process (run one worker, or see docs/scaling.md)"
            )
        if self.workers > 1 and self.store == "milvus" and self.milvus_lite:
            raise ValueError(
                f"COREL_WORKERS={self.workers} needs a Milvus server: Milvus Lite "
                f"(COREL_MILVUS_URI={self.milvus_uri}) is held by one process (run one "
                "worker, or a Milvus server, see docs/scaling.md)"
            )
        return self

    @model_validator(mode="after")
    def _lite_file_ends_in_db(self) -> Settings:
        if self.store == "milvus" and self.milvus_lite and not self.milvus_uri.endswith(".db"):
            raise ValueError(
                f"COREL_MILVUS_URI={self.milvus_uri} is neither a server's address "
                "(http://host:19530) nor a Milvus Lite file, whose name ends in .db"
            )
        return self

    @property
    def milvus_lite(self) -> bool:
        """Whether COREL_MILVUS_URI is a Milvus Lite file (is_lite_uri)."""
        return is_lite_uri(self.milvus_uri)
