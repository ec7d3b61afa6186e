"""The class store in Milvus (COREL_STORE=milvus), shared by every replica (see store.py)."""

from __future__ import annotations

import json
import time
from typing import Any

from pymilvus import DataType, MilvusClient

from service.classes.class_set import ClassSet, class_set_from_state, class_set_state
from service.milvus import MAX_VARCHAR, connect, load_collection, milvus_errors, quote

__all__ = ["MilvusClassStore"]


class MilvusClassStore:
    """Versions of each model's set in the collection `{prefix}_classes`, as JSON in
    chunks (a set with stored example inputs outgrows one VARCHAR). A version counts once
    all its chunks are there; older versions are deleted after a save."""

    shared = True

    def __init__(self, client: MilvusClient, prefix: str) -> None:
        self.client = client
        self.collection = f"{prefix}_classes"
        with milvus_errors("opening the class store"):
            if not client.has_collection(self.collection):
                self._create()
            load_collection(client, self.collection)

    @classmethod
    def open(cls, uri: str, prefix: str) -> MilvusClassStore:
        return cls(connect(uri), prefix)

    def _create(self) -> None:
        schema = MilvusClient.create_schema(auto_id=True, enable_dynamic_field=False)
        schema.add_field("pk", DataType.INT64, is_primary=True)
        schema.add_field("model_id", DataType.VARCHAR, max_length=64)
        schema.add_field("version", DataType.INT64)
        schema.add_field("part", DataType.INT64)
        schema.add_field("parts", DataType.INT64)
        schema.add_field("chunk", DataType.VARCHAR, max_length=MAX_VARCHAR)
        schema.add_field("unused", DataType.FLOAT_VECTOR, dim=2)  # Milvus wants a vector
        index = MilvusClient.prepare_index_params()
        index.add_index("unused", index_type="FLAT", metric_type="L2")
        self.client.create_collection(
            self.collection, schema=schema, index_params=index, consistency_level="Strong"
        )

    def _rows(self, where: str, fields: list[str], strong: bool = False) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = self.client.query(
            self.collection,
            filter=where,
            output_fields=fields,
            consistency_level="Strong" if strong else "Eventually",
        )
        return rows

    def _complete_versions(self, where: str, strong: bool) -> dict[tuple[str, int], int]:
        """{(model, version): parts} of the versions whose chunks are all there."""
        seen: dict[tuple[str, int], list[int]] = {}
        for r in self._rows(where, ["model_id", "version", "parts"], strong):
            seen.setdefault((r["model_id"], int(r["version"])), []).append(int(r["parts"]))
        return {key: parts[0] for key, parts in seen.items() if len(parts) == parts[0]}

    def _read(self, model_id: str, version: int) -> ClassSet:
        where = f"model_id == {quote(model_id)} and version == {version}"
        chunks = sorted(self._rows(where, ["part", "chunk"], True), key=lambda r: int(r["part"]))
        return class_set_from_state(json.loads("".join(r["chunk"] for r in chunks)))

    def load(self, model_id: str) -> tuple[int, ClassSet | None]:
        with milvus_errors("reading classes"):
            versions = self._complete_versions(f"model_id == {quote(model_id)}", strong=True)
            if not versions:
                return 0, None
            newest = max(v for _, v in versions)
            return newest, self._read(model_id, newest)

    def save(self, model_id: str, classes: ClassSet) -> int:
        text = json.dumps(class_set_state(classes, model_id=model_id), ensure_ascii=False)
        size = MAX_VARCHAR // 4  # characters: a chunk's UTF-8 bytes stay under the limit
        chunks = [text[i : i + size] for i in range(0, len(text), size)] or [""]
        version = time.time_ns() // 1000  # microseconds: replicas' clocks order versions
        rows = [
            {"model_id": model_id, "version": version, "part": n, "parts": len(chunks),
             "chunk": chunk, "unused": [0.0, 0.0]}
            for n, chunk in enumerate(chunks)
        ]  # fmt: skip
        with milvus_errors("saving classes"):
            self.client.insert(self.collection, rows)  # one request: all chunks or none
            old = self._rows(
                f"model_id == {quote(model_id)} and version < {version}", ["pk"], strong=True
            )
            if old:
                self.client.delete(self.collection, ids=[int(r["pk"]) for r in old])
        return version

    def version(self, model_id: str) -> int:
        with milvus_errors("reading the class version"):
            versions = self._complete_versions(f"model_id == {quote(model_id)}", strong=False)
        return max((v for _, v in versions), default=0)

    def earlier_sets(self, except_model: str) -> list[ClassSet]:
        with milvus_errors("reading classes"):
            versions = self._complete_versions(f"model_id != {quote(except_model)}", strong=True)
            newest: dict[str, int] = {}
            for model, version in versions:
                newest[model] = max(version, newest.get(model, 0))
            order = sorted(newest.items(), key=lambda mv: -mv[1])
            return [self._read(model, version) for model, version in order]

    def close(self) -> None:
        self.client.close()
