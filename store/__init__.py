"""The system of record: SQLModel tables, the engine, and Alembic migrations."""
