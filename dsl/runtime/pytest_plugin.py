"""pytest plugin: collects `.svm` files directly (registered through the `pytest11` entry point)."""
