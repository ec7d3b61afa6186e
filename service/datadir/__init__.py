"""The data directory (COREL_DATA_DIR) of the embedded store: its layout, lock, checks, backup."""
