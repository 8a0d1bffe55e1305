"""Local development helpers (the mail sink)."""
