"""Orchestration: stages, incremental runs, staging and promotion, history, reports."""
