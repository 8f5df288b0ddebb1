"""Serving: load the champion with its contract (loading), check rows (contract), predict."""
