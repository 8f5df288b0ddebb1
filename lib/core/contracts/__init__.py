"""Typed contracts for every file and tag Quire persists: one writer and one reader each."""
