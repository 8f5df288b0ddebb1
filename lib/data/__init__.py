"""Data: sources, the generator, schema inference and validation, splits, ingest, labels, drift."""
