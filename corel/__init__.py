"""The torch-free core that `training` and `service` share, so each contract lives once:

- `bundle`: the model bundle (manifest, encoder, class vectors), written by training and
  checked and read by the service;
- `class_rule`: how a class is predicted from an embedding under the bundle's rule;
- `clustering`: how clusterable a set of embeddings is (the COREL paper's protocol);
- `files`, `logs`: crash-safe writes and the one logging set-up.

Nothing here imports torch, FAISS or FastAPI.
"""
