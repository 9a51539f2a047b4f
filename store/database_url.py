"""Parsing the one database setting into what each library wants (pure: no connection made)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import parse_qs, unquote, urlsplit


class DatabaseUrlError(ValueError):
    pass


@dataclass(frozen=True)
class DatabaseConfig:
    kind: Literal["sqlite", "postgres"]
    path: str = ""
    host: str = ""
    port: int = 5432
    user: str = ""
    password: str = ""
    dbname: str = ""
    schema: str = ""

    @classmethod
    def from_url(cls, url: str) -> DatabaseConfig:
        url = url.strip()
        if not url:
            raise DatabaseUrlError("the database URL is empty")
        if "://" not in url:
            # A bare path is a SQLite file: friendly for `--database-url demo.db`.
            return cls(kind="sqlite", path=str(Path(url)))
        parts = urlsplit(url)
        scheme = parts.scheme.split("+")[0].lower()
        if scheme == "sqlite":
            path = url.split("://", 1)[1]
            path = path[1:] if path.startswith("/") else path
            if not path or path == ":memory:":
                raise DatabaseUrlError(
                    "SQLite needs a file path, e.g. sqlite:///livedash.db (in-memory is not shared "
                    "between the daemon and the reports)"
                )
            return cls(kind="sqlite", path=unquote(path))
        if scheme in ("postgres", "postgresql"):
            dbname = parts.path.lstrip("/")
            if not dbname:
                raise DatabaseUrlError(
                    "a PostgreSQL URL needs a database name: postgresql://user@host/dbname"
                )
            query = parse_qs(parts.query)
            return cls(
                kind="postgres",
                host=parts.hostname or "127.0.0.1",
                port=parts.port or 5432,
                user=unquote(parts.username or "postgres"),
                password=unquote(parts.password or ""),
                dbname=unquote(dbname),
                schema=query.get("schema", [""])[0],
            )
        raise DatabaseUrlError(
            f"unsupported database URL scheme {parts.scheme!r}; use sqlite:///file.db or "
            "postgresql://user@host:5432/dbname"
        )

    def sqlalchemy_url(self) -> str:
        if self.kind == "sqlite":
            return f"sqlite:///{self.path}"
        auth = self.user + (f":{self.password}" if self.password else "")
        return f"postgresql+psycopg://{auth}@{self.host}:{self.port}/{self.dbname}"

    def eventsourcing_env(self, create_tables: bool) -> dict[str, str]:
        env = {"CREATE_TABLE": "y" if create_tables else "n"}
        if self.kind == "sqlite":
            env.update(
                PERSISTENCE_MODULE="eventsourcing.sqlite",
                SQLITE_DBNAME=self.path,
                SQLITE_LOCK_TIMEOUT="30",
            )
        else:
            env.update(
                PERSISTENCE_MODULE="eventsourcing.postgres",
                POSTGRES_DBNAME=self.dbname,
                POSTGRES_HOST=self.host,
                POSTGRES_PORT=str(self.port),
                POSTGRES_USER=self.user,
                POSTGRES_PASSWORD=self.password,
                POSTGRES_POOL_SIZE="8",
                POSTGRES_MAX_OVERFLOW="8",
                POSTGRES_LOCK_TIMEOUT="10",
                POSTGRES_CONNECT_TIMEOUT="5",
                APPLICATION_RECORDER_TOPIC="store.pg_recorder:CopyPostgresApplicationRecorder",
            )
            if self.schema:
                env["POSTGRES_SCHEMA"] = self.schema
        return env

    def describe(self) -> str:
        if self.kind == "sqlite":
            return f"SQLite file {self.path}"
        return f"PostgreSQL {self.user}@{self.host}:{self.port}/{self.dbname}"
