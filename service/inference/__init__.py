"""Inputs to embeddings: parsing, preprocessing by the manifest, the ONNX runtime, batching."""
