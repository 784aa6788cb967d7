"""Alembic environment: runs migrations on the connection :func:`snapkeep.catalog.db.migrate` passes."""

from alembic import context

from snapkeep.catalog.tables import Base

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
