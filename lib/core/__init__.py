"""Shared foundations: parameters, errors, logging, paths, MLflow tracking, atomic files."""
