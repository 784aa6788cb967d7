"""The catalog: SQLAlchemy tables and the functions that read and write them (they never commit)."""
