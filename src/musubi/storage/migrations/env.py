"""Alembic environment: runs on the connection handed over by :mod:`musubi.storage.migrate`.

The target metadata is the whole application's (:mod:`musubi.schema`, above every domain
package); this file is a script Alembic loads, so storage itself does not import it.
"""

from __future__ import annotations

from alembic import context

from musubi.schema import metadata

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
