"""A database made before ``assets.broker_secrets`` existed: ``missing_tables`` names the
column (so ``lts run`` creates what is missing), ``create_schema`` adds it, and the rows
already there are read and written as before (SQLite and PostgreSQL)."""

from __future__ import annotations

from sqlalchemy import inspect, text

from persistence.database import make_engine
from persistence.records import AuditContext
from persistence.schema import create_schema, missing_tables
from persistence.store import Store
from tests.fixtures.db_fixtures import seed_owner_portfolio


def test_an_older_assets_table_gets_the_new_nullable_column(db_url):
    store = Store.from_url(db_url)
    try:
        seeded = seed_owner_portfolio(store)
    finally:
        store.close()
    engine = make_engine(db_url)
    try:
        with engine.begin() as conn:  # the table as an older version made it
            conn.execute(text("ALTER TABLE assets DROP COLUMN broker_secrets"))
        assert missing_tables(engine) == ["assets.broker_secrets"]
        create_schema(engine)
        assert missing_tables(engine) == []
        assert "broker_secrets" in {c["name"] for c in inspect(engine).get_columns("assets")}
        create_schema(engine)  # idempotent
    finally:
        engine.dispose()
    store = Store.from_url(db_url)
    try:
        before = store.get_asset(seeded.asset_id)
        assert before.broker_secrets is None and before.symbol == seeded.symbol
        after = store.set_asset_broker(AuditContext.system(), seeded.asset_id, plugin="oanda_broker",
                                       config={"account_id": "1"}, secrets={"access_token": "gAAAA-ciphertext"})
        assert store.get_asset(after.id).broker_secrets == {"access_token": "gAAAA-ciphertext"}
    finally:
        store.close()
