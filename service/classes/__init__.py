"""The classes the service predicts: the class set, its index and the stores that keep it."""
