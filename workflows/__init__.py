"""Workflows: deterministic, sandboxed; one workflow class per module."""
