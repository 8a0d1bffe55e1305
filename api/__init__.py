"""The thin HTTP layer: parse, authenticate, call the workflow or the store, map errors."""
