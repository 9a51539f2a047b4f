"""The composition root: builds the application, the projection store and the runner."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType

from sqlalchemy import Engine, inspect
from sqlalchemy.exc import OperationalError as SAOperationalError

from cli.errors import CliError, ExitCode
from projections.ai_requests import AIRequestProjection
from projections.analytics import AnalyticsProjection
from projections.chain import LogReader
from projections.companies import CompanyProjection
from projections.erasure import ErasureProjection
from projections.event_index import EventIndexProjection
from projections.overview_history import OverviewHistoryProjection
from projections.runner import Projection, ProjectionRunner
from projections.schema import metadata
from projections.status import StatusProjection
from projections.store import create_schema, make_engine
from store.append_only import protect_log
from store.application import LiveDashApp
from store.data_keys import KEY_TABLES, DataKeys, create_key_tables
from store.database_url import DatabaseConfig, DatabaseUrlError
from store.master_key import MasterKeyError

INIT_HINT = "run `livedash init` first (with the same --database-url)"


@dataclass
class Runtime:
    config: DatabaseConfig
    app: LiveDashApp
    engine: Engine
    runner: ProjectionRunner
    closed: bool = field(default=False)

    @classmethod
    def open(
        cls, database_url: str, create: bool = False, master_key: bytes | None = None
    ) -> Runtime:
        """``master_key``: personal values are sealed with per-session keys. Without one,
        a database whose data is sealed is refused (its content would be unreadable here,
        and a projection built here would lose it); any other is used unsealed."""
        try:
            config = DatabaseConfig.from_url(database_url)
        except DatabaseUrlError as e:
            raise CliError(
                str(e), hint="set --database-url or LIVEDASH_DATABASE_URL", code=ExitCode.USAGE
            ) from None
        if config.kind == "sqlite" and not create and not Path(config.path).exists():
            raise CliError(f"no database at {config.path}", hint=INIT_HINT, code=ExitCode.DATABASE)
        engine = make_engine(config.sqlalchemy_url())
        _check_reachable(engine, config, create)
        if create:
            create_key_tables(engine)
        data_keys = _data_keys(engine, master_key)
        try:
            app = LiveDashApp(
                env=config.eventsourcing_env(create_tables=create), data_keys=data_keys
            )
        except Exception as e:  # the library raises several types for a bad connection
            raise CliError(
                f"cannot open the event store on {config.describe()}: {e}",
                hint="check that the database server is running and the URL is right",
                code=ExitCode.DATABASE,
            ) from None
        if create:
            create_schema(engine)
            protect_log(engine, events_table(config), config.schema or None)
        runner = ProjectionRunner(
            engine,
            app.recorder,
            app.mapper,
            all_projections(),
        )
        return cls(config=config, app=app, engine=engine, runner=runner)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.runner.close()
            self.app.close()
            self.engine.dispose()

    def __enter__(self) -> Runtime:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _data_keys(engine: Engine, master_key: bytes | None) -> DataKeys | None:
    if master_key is None:
        if DataKeys.encryption_on(engine):
            raise CliError(
                "this database seals personal data, and no master key is set",
                hint="set LIVEDASH_MASTER_KEY (base64 of 32 bytes) or LIVEDASH_MASTER_KEY_FILE",
                code=ExitCode.USAGE,
            )
        return None
    keys = DataKeys(engine, master_key)
    try:
        keys.check_master(datetime.now(UTC))
    except MasterKeyError as e:
        raise CliError(str(e), hint="use the master key this database was set up with") from None
    return keys


def events_table(config: DatabaseConfig) -> str:
    return "stored_events" if config.kind == "sqlite" else "livedash_events"


def all_projections() -> list[Projection]:
    """A fresh instance of every projection the runner keeps (a verify builds a second set)."""
    return [
        StatusProjection(),
        CompanyProjection(),
        AnalyticsProjection(),
        AIRequestProjection(),
        EventIndexProjection(),
        OverviewHistoryProjection(),
        ErasureProjection(),
    ]


def log_reader(rt: Runtime) -> LogReader:
    """The stored events as the hash chain reads them (raw rows, in log order)."""
    return LogReader(rt.engine, events_table(rt.config), rt.config.schema or None)


def _check_reachable(engine: Engine, config: DatabaseConfig, create: bool) -> None:
    try:
        names = set(inspect(engine).get_table_names(schema=config.schema or None))
    except SAOperationalError as e:
        reason = str(e.orig).strip().splitlines()[0] if e.orig else str(e)
        raise CliError(
            f"cannot reach {config.describe()}: {reason}",
            hint="check that the database server is running and the URL is right",
            code=ExitCode.DATABASE,
        ) from None
    if create:
        return
    missing = [t for t in [events_table(config), *metadata.tables, *KEY_TABLES] if t not in names]
    if missing and events_table(config) in names and "projection_tracking" in names:
        raise CliError(
            f"{config.describe()} was initialised by an older version (missing: "
            f"{', '.join(missing[:3])})",
            hint="run `livedash init` (with the same --database-url): it adds what is missing "
            "and keeps everything stored",
            code=ExitCode.DATABASE,
        )
    if missing:
        raise CliError(
            f"{config.describe()} is not initialised (missing: {', '.join(missing[:3])})",
            hint=INIT_HINT,
            code=ExitCode.DATABASE,
        )
