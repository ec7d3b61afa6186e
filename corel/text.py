"""Text input: the bundle's tokenizer turns strings into the token ids its encoder takes.

The tokenizer is a Hugging Face `tokenizers` file (tokenizer.json) trained on the training
split (training/text.py), so nothing is downloaded and the service needs no torch. A batch
is padded with `pad_id` to its longest input, not to `max_length`: the encoder masks the
padding itself (ids == pad_id), so an input embeds the same in any batch.

Inputs longer than `max_length` tokens keep their first `max_length` tokens (`truncation`
"keep_start"); the batch says which were cut, so the service can say so or refuse them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

__all__ = [
    "PAD_TOKEN",
    "UNK_TOKEN",
    "TextTokenizer",
    "TokenizedBatch",
    "Truncation",
    "pad_batch",
    "trim_padding",
]

PAD_TOKEN = "[PAD]"  # id 0 in every tokenizer training/text.py trains
UNK_TOKEN = "[UNK]"  # a word the training split did not hold often enough
Truncation = Literal["keep_start"]


@dataclass(frozen=True)
class TokenizedBatch:
    ids: np.ndarray  # (N, L) int64, padded with pad_id to the longest input; L >= 1
    lengths: np.ndarray  # (N,) int64: the tokens each input kept
    truncated: np.ndarray  # (N,) bool: the input had more than max_length tokens


class TextTokenizer:
    """A bundle's tokenizer.json with its length rule: `encode` makes a padded batch."""

    def __init__(self, path: Path, *, max_length: int, pad_id: int = 0) -> None:
        from tokenizers import Tokenizer  # local: keeps `import corel.bundle` cheap

        if max_length < 1:
            raise ValueError(f"max_length must be at least 1, got {max_length}")
        self._tokenizer = Tokenizer.from_file(str(path))
        # lengths are this class's rule, not the file's: one padding and one truncation
        self._tokenizer.no_padding()
        self._tokenizer.no_truncation()
        self.max_length = max_length
        self.pad_id = pad_id
        unk = self._tokenizer.token_to_id(UNK_TOKEN)
        self.unk_id = pad_id + 1 if unk is None else unk

    def encode(self, texts: Sequence[str]) -> TokenizedBatch:
        encodings = self._tokenizer.encode_batch(list(texts), add_special_tokens=False)
        full = [e.ids for e in encodings]
        kept = [ids[: self.max_length] for ids in full]
        lengths = np.array([len(ids) for ids in kept], dtype=np.int64)
        truncated = np.array([len(ids) > self.max_length for ids in full], dtype=bool)
        return TokenizedBatch(pad_batch(kept, self.pad_id), lengths, truncated)


def pad_batch(rows: Sequence[Sequence[int] | np.ndarray], pad_id: int = 0) -> np.ndarray:
    """Token id rows of any lengths as one (N, L) int64 array, padded to the longest."""
    width = max([1, *(len(row) for row in rows)])
    out = np.full((len(rows), width), pad_id, dtype=np.int64)
    for n, row in enumerate(rows):
        out[n, : len(row)] = row
    return out


def trim_padding(batch: np.ndarray, pad_id: int = 0) -> np.ndarray:
    """A padded (N, L) batch without the columns after its longest input (at least one)."""
    used = np.flatnonzero((batch != pad_id).any(axis=0))
    width = int(used[-1]) + 1 if used.size else 1
    return np.ascontiguousarray(batch[:, :width])
