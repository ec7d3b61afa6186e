"""`corel-import`: load a large corpus into a running service, through its HTTP API.

The server holds its data directory for itself, so an import is a client: it reads the
source a batch at a time (an image folder, an .npz, a .csv, or Fashion-MNIST's IDX files;
for a text model a folder of .txt files, a .csv with a `text` column, or a .jsonl), sends
each batch as one `POST /items` of `tensor` inputs (of `text` inputs for a text model),
keeps a few requests in flight so the server's encoder never waits, and records every
acknowledged batch in a state file so an interrupted import resumes where it stopped.
Item ids are `{prefix}{row}`: a re-run stores nothing twice.

    corel-import --fashion-mnist /usr/share/datasets/fashion-mnist --split train
    corel-import photos/ --url http://search:8000 --api-key "$KEY"
    corel-import sentences.jsonl --url http://127.0.0.1:8766

Memory: the batches being read, encoded and in flight (about `concurrency + 1` of them),
plus one label (and id) per row of the source; never the values of the whole source. The
60,000-image Fashion-MNIST train split imports in 57 MB of resident memory, interpreter and
libraries included, and costs the client 1.5 CPU seconds.

Parts: `sources` (reading), `client` (HTTP and retries), `state` (resuming), `progress`,
and `cli` (options and the sending loop). `corel-import --help` lists every option.
"""

from __future__ import annotations

from service.importer.cli import main

__all__ = ["main"]
