"""The item search benchmark's parts (benchmarks/item_search.py runs them; store_comparison.py
reuses the data, the server's data directory, its measurements and the bulk import):

- `data`: N items from Fashion-MNIST embeddings and their queries, cached; exact search.
- `index_study`: each index kind in process (build, memory, recall, queries/s).
- `server`: the server on the offline-built data directory, and what is measured through it.
- `server_run`: the server part of item_search, start to end.
- `bulk_import`: corel-import into a fresh server against raw onnxruntime.
- `report`: the markdown report, its targets, the figure and the JSON.
"""
