"""Activities: everything that touches the world (the store, SMTP)."""
