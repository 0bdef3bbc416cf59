"""Reading and writing datasets: DuckDB for files, the database itself for SQL tables."""

from __future__ import annotations

import datetime
import decimal
import shutil
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
from django.conf import settings

from apps.flow.models import Connection, Dataset
from apps.system.lazy import LazyModule

duckdb = LazyModule("duckdb")
pd = LazyModule("pandas")

BATCH = 50_000
SQL_TYPES = {  # canonical type → (PostgreSQL, SQLite)
    "BIGINT": ("BIGINT", "INTEGER"),
    "DOUBLE": ("DOUBLE PRECISION", "REAL"),
    "BOOLEAN": ("BOOLEAN", "INTEGER"),
    "DATE": ("DATE", "TEXT"),
    "TIMESTAMP": ("TIMESTAMP", "TEXT"),
    "VARCHAR": ("TEXT", "TEXT"),
}


class FlowError(Exception):
    """A user-facing error: names the dataset, column or connection at fault."""


def quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def literal(text: str) -> str:
    return "'" + str(text).replace("'", "''") + "'"


# -- files --------------------------------------------------------------------------------------


def root(connection: Connection) -> Path:
    configured = connection.config.get("root") or str(settings.VAR_DIR / "data")
    return Path(configured).resolve()


def files_path(dataset: Dataset) -> Path:
    base = root(dataset.connection)
    path = (base / (dataset.path or dataset.name)).resolve()
    if base != path and base not in path.parents:
        raise FlowError(f"{dataset}: path {dataset.path!r} leaves the connection's root folder.")
    return path


def files_of(dataset: Dataset) -> list[Path]:
    path = files_path(dataset)
    if path.is_dir():
        return sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith("."))
    return [path] if path.is_file() else []


def duckdb_connect(*, datasets: Iterable[Dataset] = (), files: Iterable[Path] = ()):
    """A DuckDB connection that can open the files of ``datasets`` and the ``files`` given
    (to read or to write), and nothing else: no other file, folder, URL, extension or
    secret, and no setting can change once made (``lock_configuration``).

    User SQL (a recipe's, a metric's) runs here, in the worker's own process, which can
    read the settings' secrets and the database's credentials: DuckDB's own access control
    is its sandbox. Without it an editor's SQL read ``/proc/self/environ`` and wrote any file
    the worker may write (tests/security/test_user_sql.py).
    """
    allowed, folders = [str(path) for path in files], []
    for dataset in datasets:
        path = files_path(dataset)
        if path.is_dir():  # a folder of parts, whole: a part may come while it is read
            folders.append(f"{path}/")
        else:
            allowed.append(str(path))
    con = duckdb.connect(
        config={"autoinstall_known_extensions": False, "autoload_known_extensions": False}
    )
    try:
        con.execute("SET allowed_paths = $1", [allowed])  # before access is turned off
        con.execute("SET allowed_directories = $1", [folders])
        con.execute("SET enable_external_access = false")
        con.execute("SET lock_configuration = true")
    except BaseException:
        con.close()
        raise
    return con


def close_later(con) -> None:
    """Close a DuckDB connection off the caller's path: closing one after a query over
    millions of rows frees its memory and joins its threads, 10-15 ms a build waited for.
    Not a daemon thread: the interpreter waits for it at exit (a daemon killed inside
    DuckDB's close aborted the process: "FATAL: exception not rethrown")."""
    threading.Thread(target=con.close, name="cadenza-duckdb-close").start()


def staging_path(dataset: Dataset) -> Path:
    """Where a file dataset's new data is written before it replaces the old in one rename."""
    target = files_path(dataset)
    return target.with_name(f".{target.name}.writing")


def duckdb_source(dataset: Dataset) -> str:
    files = files_of(dataset)
    if not files:
        raise FlowError(f"{dataset} has no data (never built, or its files are missing).")
    return _reader(dataset, files, written_here=_as_built(dataset, files))


def _as_built(dataset: Dataset, files: list[Path]) -> bool:
    """Are these the files a build wrote (no edit of the dataset, no file changed since)?
    Then they are read as written: the sniffer, guessing, took a one-column CSV of "a;b"
    values for a file of three columns."""
    if dataset.built_at is None or dataset.updated_at > dataset.built_at:
        return False
    built = dataset.built_at.timestamp()
    return all(path.stat().st_mtime <= built for path in files)


# How COPY … (HEADER, FORMAT csv) writes: told so, a reader only detects the column types
# (sniffing the dialect too took 7 ms even on a small file).
WRITTEN_CSV = "delim = ',', quote = '\"', escape = '\"', new_line = '\\n'"


def _reader(dataset: Dataset, files: list[Path], *, written_here: bool = False) -> str:
    """A DuckDB source over ``files``; ``written_here``: files Cadenza wrote (COPY)."""
    names = "[" + ", ".join(literal(p) for p in files) + "]"
    if dataset.format == Dataset.Format.PARQUET:
        return f"read_parquet({names})"
    dialect = f", {WRITTEN_CSV}" if written_here else ""
    return f"read_csv({names}, header = true, auto_detect = true{dialect})"


def data_changed_at(dataset: Dataset) -> datetime.datetime | None:
    """When a source dataset's data last changed (newest file mtime; SQL: its definition)."""
    if dataset.connection.is_sql:
        return dataset.updated_at
    files = files_of(dataset)
    if not files:
        return None
    newest = max(p.stat().st_mtime for p in files)
    return datetime.datetime.fromtimestamp(newest, tz=datetime.UTC)


# -- SQL connections ----------------------------------------------------------------------------


def database_of(connection: Connection) -> tuple:
    """Which database a SQL connection opens: two connections to one database (another user,
    another name) are one place, where a table belongs to one project."""
    config = connection.config
    if connection.kind == Connection.Kind.SQLITE:
        path = Path(config.get("path") or settings.VAR_DIR / f"{connection.name}.db")
        return ("sqlite", str(path.resolve()))
    host = str(config.get("host", "127.0.0.1")).lower()
    host = "127.0.0.1" if host in ("localhost", "::1") else host
    return ("postgresql", host, int(config.get("port", 5432)), config.get("database"))


@contextmanager
def sql_connect(connection: Connection, *, read_only: bool = False):
    """A DB-API connection to ``connection``'s database, committed at the end (rolled back on
    error). ``read_only``: for SQL that must only read (a trigger's query, a metric's): the
    database itself refuses writes, and nothing is committed."""
    config = connection.config
    if connection.kind == Connection.Kind.SQLITE:
        path = Path(config.get("path") or settings.VAR_DIR / f"{connection.name}.db")
        if read_only:  # the file opened read-only: SQLite itself refuses every write
            db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=20)
        else:
            db = sqlite3.connect(path, timeout=20)
        db.set_authorizer(_within_its_file)
    else:
        db = psycopg.connect(
            host=config.get("host", "127.0.0.1"),
            port=config.get("port", 5432),
            dbname=config.get("database"),
            user=config.get("user"),
            password=connection.secrets.get("password") or None,
            connect_timeout=10,
        )
        db.read_only = read_only  # every transaction of the session: BEGIN READ ONLY
    try:
        yield db
        if read_only:
            db.rollback()
        else:
            db.commit()
    except Exception:
        db.rollback()
        raise
    finally:
        db.close()


def read_only_rows(
    connection: Connection, sql: str, *, limit: int | None = None, timeout: float = 120.0
) -> list[tuple]:
    """The rows of one read-only statement of a user's (a trigger's query, a metric's): the
    database refuses any write, a second statement (``…; COMMIT``) is an error, and the
    statement is stopped after ``timeout`` seconds (a trigger's query must not hold a
    polling thread for good)."""
    with sql_connect(connection, read_only=True) as db:
        cursor = db.cursor()
        if connection.kind == Connection.Kind.SQLITE:
            deadline = time.monotonic() + timeout
            db.set_progress_handler(lambda: time.monotonic() > deadline, 10_000)
            cursor.execute(sql)  # sqlite3 refuses a second statement by itself
        else:
            cursor.execute(f"SET LOCAL statement_timeout = {int(timeout * 1000)}")
            cursor.execute(sql, prepare=True)  # a prepared statement holds one command
        if cursor.description is None:
            return []
        return cursor.fetchmany(limit) if limit else cursor.fetchall()


def _within_its_file(action: int, *_) -> int:
    """User SQL on a SQLite connection stays in that connection's file: ATTACH (and with it
    VACUUM INTO) would open or write any other, Cadenza's own database among them."""
    if action in (sqlite3.SQLITE_ATTACH, sqlite3.SQLITE_DETACH):
        return sqlite3.SQLITE_DENY
    return sqlite3.SQLITE_OK


def connection_test(connection: Connection) -> str:
    """Raise FlowError with the reason, or return a short description of what answered."""
    try:
        if not connection.is_sql:
            folder = root(connection)
            folder.mkdir(parents=True, exist_ok=True)
            return f"folder {folder} is reachable"
        with sql_connect(connection) as db:
            db.cursor().execute("SELECT 1")
        return f"{connection.kind} answered"
    except (OSError, psycopg.Error, sqlite3.Error) as error:
        raise FlowError(f"{connection.name}: {error}".strip()) from None


# -- reading and writing ------------------------------------------------------------------------


def canonical_type(value) -> str:
    if isinstance(value, bool):
        return "BOOLEAN"
    if isinstance(value, int):
        return "BIGINT"
    if isinstance(value, float | decimal.Decimal):
        return "DOUBLE"
    if isinstance(value, datetime.datetime):
        return "TIMESTAMP"
    if isinstance(value, datetime.date):
        return "DATE"
    return "VARCHAR"


def duck_type(name: str) -> str:
    name = name.upper()
    if any(t in name for t in ("INT",)):
        return "BIGINT"
    if any(t in name for t in ("DOUBLE", "FLOAT", "DECIMAL", "REAL", "NUMERIC")):
        return "DOUBLE"
    for t in ("BOOLEAN", "TIMESTAMP", "DATE"):
        if name.startswith(t):
            return t
    return "VARCHAR"


def relation_schema(relation) -> list[dict]:
    return [
        {"name": name, "type": duck_type(str(kind))}
        for name, kind in zip(relation.columns, relation.types, strict=True)
    ]


def relation_frames(relation) -> Iterator[pd.DataFrame]:
    for batch in relation.to_arrow_reader(BATCH):
        yield batch.to_pandas()


def read_frames(dataset: Dataset) -> tuple[list[dict], Iterator[pd.DataFrame]]:
    """The schema and the rows of a dataset, in pandas batches."""
    if not dataset.connection.is_sql:
        con = duckdb_connect(datasets=[dataset])
        relation = con.sql(f"SELECT * FROM {duckdb_source(dataset)}")

        def batches():
            try:
                yield from relation_frames(relation)
            finally:
                con.close()

        return relation_schema(relation), batches()
    return _read_sql(dataset)


def read_schema(dataset: Dataset) -> list[dict]:
    """Columns and types, reading as little as possible (and closing what it opened)."""
    if not dataset.connection.is_sql:
        with duckdb_connect(datasets=[dataset]) as con:
            return relation_schema(con.sql(f"SELECT * FROM {duckdb_source(dataset)} LIMIT 0"))
    schema, frames = _read_sql(dataset, limit=1)
    for _ in frames:  # drain, so the generator's finally closes the connection
        pass
    return schema


def _read_sql(
    dataset: Dataset, limit: int | None = None
) -> tuple[list[dict], Iterator[pd.DataFrame]]:
    """Streams: the connection stays open until the last batch has been read."""
    context = sql_connect(dataset.connection)
    db = context.__enter__()
    cursor = db.cursor()
    try:
        cursor.execute(
            f"SELECT * FROM {quote(dataset.table_name)}" + (f" LIMIT {int(limit)}" if limit else "")
        )
    except (psycopg.Error, sqlite3.Error) as error:
        context.__exit__(None, None, None)
        raise FlowError(f"{dataset}: {error}".strip()) from None
    columns = [d[0] for d in cursor.description]
    first = cursor.fetchmany(BATCH)
    sample = first[0] if first else [None] * len(columns)
    schema = [{"name": c, "type": canonical_type(v)} for c, v in zip(columns, sample, strict=True)]

    def batches():
        try:
            rows = first
            while rows:
                yield pd.DataFrame.from_records(rows, columns=columns)
                rows = cursor.fetchmany(BATCH)
            if not first:
                yield pd.DataFrame(columns=columns)
        finally:
            context.__exit__(None, None, None)

    return schema, batches()


def write_frames(dataset: Dataset, schema: list[dict], frames) -> int:
    """Replace the dataset's data with ``frames``; returns the number of rows written."""
    if not dataset.connection.is_sql:
        return _write_files(dataset, schema, frames)
    return _write_sql(dataset, schema, frames)


def _write_files(dataset: Dataset, schema: list[dict], frames) -> int:
    target, staging = files_path(dataset), staging_path(dataset)
    target.parent.mkdir(parents=True, exist_ok=True)
    con = duckdb_connect(files=[staging])
    columns = ", ".join(f"{quote(c['name'])} {c['type']}" for c in schema)
    con.execute(f"CREATE TABLE out ({columns})")
    for frame in frames:
        con.register("frame", frame)
        con.execute("INSERT INTO out SELECT * FROM frame")
        con.unregister("frame")
    options = _copy_options(dataset)
    con.execute(f"COPY out TO {literal(staging)} ({options})")
    rows = con.execute("SELECT count(*) FROM out").fetchone()[0]
    con.close()
    _remove(target)
    staging.rename(target)  # readers never see a half-written file
    return rows


def _copy_options(dataset: Dataset) -> str:
    # Straight into the staging file: DuckDB's own temporary file beside an existing one (a
    # crashed build's) is a path the connection may not write (duckdb_connect).
    kind = "FORMAT parquet" if dataset.format == Dataset.Format.PARQUET else "HEADER, FORMAT csv"
    return f"{kind}, USE_TMP_FILE false"


def copy_query_to_files(dataset: Dataset, con, sql: str) -> tuple[int, list[dict]]:
    """Write a DuckDB query straight into a file dataset (no round trip through Python):
    the rows written, and the schema that readers of the file will see (read on ``con``,
    which must allow the dataset's ``staging_path``: a connection less to make)."""
    target, staging = files_path(dataset), staging_path(dataset)
    target.parent.mkdir(parents=True, exist_ok=True)
    options = _copy_options(dataset)
    rows = con.execute(f"COPY ({sql}) TO {literal(staging)} ({options})").fetchone()[0]
    reader = _reader(dataset, [staging], written_here=True)
    schema = relation_schema(con.sql(f"SELECT * FROM {reader} LIMIT 0"))
    _remove(target)
    staging.rename(target)  # readers never see a half-written file
    return rows, schema


def _write_sql(dataset: Dataset, schema: list[dict], frames) -> int:
    flavour = 0 if dataset.connection.kind == Connection.Kind.POSTGRESQL else 1
    table = quote(dataset.table_name)
    columns = ", ".join(f"{quote(c['name'])} {SQL_TYPES[c['type']][flavour]}" for c in schema)
    marks = ", ".join(["%s" if flavour == 0 else "?"] * len(schema))
    rows = 0
    with sql_connect(dataset.connection) as db:
        cursor = db.cursor()
        cursor.execute(f"DROP TABLE IF EXISTS {table}")
        cursor.execute(f"CREATE TABLE {table} ({columns})")
        for frame in frames:
            records = [_plain(row) for row in frame.itertuples(index=False, name=None)]
            cursor.executemany(f"INSERT INTO {table} VALUES ({marks})", records)
            rows += len(records)
    return rows


def _plain(row: tuple) -> tuple:
    """numpy and pandas scalars → Python values a DB-API driver accepts."""
    plain = []
    for value in row:
        if value is None or (isinstance(value, float) and value != value) or value is pd.NaT:
            plain.append(None)
        elif hasattr(value, "item"):
            plain.append(value.item())
        elif isinstance(value, pd.Timestamp):
            plain.append(value.to_pydatetime())
        else:
            plain.append(value)
    return tuple(plain)


def query_rows(dataset: Dataset, template: str) -> list[tuple]:
    """Run ``template`` (with ``{source}`` standing for the dataset) where the data lives."""
    if not dataset.connection.is_sql:
        sql = template.replace("{source}", duckdb_source(dataset))
        con = duckdb_connect(datasets=[dataset])
        try:
            return con.execute(sql).fetchall()
        except duckdb.Error as error:
            raise FlowError(f"{dataset.name}: {error}") from None
        finally:
            close_later(con)
    try:
        return read_only_rows(
            dataset.connection, template.replace("{source}", quote(dataset.table_name))
        )
    except (psycopg.Error, sqlite3.Error) as error:
        raise FlowError(f"{dataset.name}: {error}".strip()) from None


def dataset_columns(dataset: Dataset) -> list[str]:
    """Column names, from the stored schema (detected and stored on first use)."""
    if not dataset.schema:
        schema = read_schema(dataset)
        Dataset.objects.filter(pk=dataset.pk).update(schema=schema)
        dataset.schema = schema
    return [column["name"] for column in dataset.schema]


def column_sql(dataset: Dataset, name: str, owner: str) -> str:
    """The quoted column, or FlowError naming the unknown column and the ones there are."""
    columns = dataset_columns(dataset)
    if name not in columns:
        raise FlowError(
            f"{owner}: unknown column {name!r} in {dataset.name} (columns: {', '.join(columns)})."
        )
    return quote(name)


def clear(dataset: Dataset) -> None:
    if dataset.connection.is_sql:
        with sql_connect(dataset.connection) as db:
            db.cursor().execute(f"DROP TABLE IF EXISTS {quote(dataset.table_name)}")
    else:
        _remove(files_path(dataset))


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    elif path.exists():
        path.unlink()
