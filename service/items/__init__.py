"""Items and their neighbours: the contract (types.py, backend.py) and its two stores."""
