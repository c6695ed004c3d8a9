"""Alembic environment: the same Settings and metadata as the application.

`digital-id db upgrade` hands in a connection it already holds (with the migration lock
taken); run by hand, `alembic` connects with DIGITAL_ID_DATABASE_URL.
"""

from alembic import context

from digital_id.config import load_settings
from digital_id.db.engine import create_engine_for
from digital_id.schema import metadata


def run_migrations(connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_offline() -> None:
    context.configure(
        url=load_settings().database_url,
        target_metadata=metadata,
        literal_binds=True,
        render_as_batch=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    connection = context.config.attributes.get("connection")
    if connection is not None:
        run_migrations(connection)
        return
    engine = create_engine_for(load_settings().database_url)
    with engine.begin() as own_connection:
        run_migrations(own_connection)
    engine.dispose()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
