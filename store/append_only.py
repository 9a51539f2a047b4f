"""The event log refuses UPDATE and DELETE (and TRUNCATE on PostgreSQL): triggers on the
events table, so neither this project's connections nor a hand at a SQL prompt can change
history without first dropping them, which `livedash audit verify` would then show.

Snapshots are not protected: they are a cache the log can rebuild. Erasure of personal data
(crypto-shredding) deletes keys, never events, so it needs no way round the triggers.
"""

from __future__ import annotations

from sqlalchemy import Engine

REFUSED = "the event log is append-only"
TRIGGER = "livedash_append_only"


def protect_log(engine: Engine, table: str, schema: str | None = None) -> None:
    """Installs the triggers on ``table`` (idempotent)."""
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            qualified = f'"{schema}"."{table}"' if schema else f'"{table}"'
            # Daemons starting together must not replace the function at once ("tuple
            # concurrently updated"): one at a time, and only when the trigger is missing.
            conn.exec_driver_sql("SELECT pg_advisory_xact_lock(hashtext('livedash_append_only'))")
            present = conn.exec_driver_sql(
                "SELECT 1 FROM pg_trigger WHERE tgname = %(name)s "
                "AND tgrelid = to_regclass(%(table)s)",
                {"name": TRIGGER, "table": qualified},
            ).first()
            if present:
                return
            conn.exec_driver_sql(
                "CREATE OR REPLACE FUNCTION livedash_refuse_change() RETURNS trigger "
                "LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION "
                f"'{REFUSED}: %% on %% refused', TG_OP, TG_TABLE_NAME "
                "USING ERRCODE = 'insufficient_privilege'; END $$"
            )
            conn.exec_driver_sql(
                f"CREATE OR REPLACE TRIGGER {TRIGGER} BEFORE UPDATE OR DELETE OR TRUNCATE "
                f"ON {qualified} FOR EACH STATEMENT EXECUTE FUNCTION livedash_refuse_change()"
            )
            return
        for operation in ("UPDATE", "DELETE"):
            conn.exec_driver_sql(
                f"CREATE TRIGGER IF NOT EXISTS {TRIGGER}_{operation.lower()} "
                f'BEFORE {operation} ON "{table}" '
                f"BEGIN SELECT RAISE(ABORT, '{REFUSED}: {operation} refused'); END"
            )
