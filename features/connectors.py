"""Sources a pull reads from, each giving Arrow record batches: a folder of files, PostgreSQL, or
any database with an ADBC driver.

Source URIs (``propensity data pull --source``):

- a folder path (or ``file:///path``): one ``<name>.parquet`` or ``<name>.csv`` per table, read by
  DuckDB (CSV as text, typed later); a mapping's ``query`` is DuckDB SQL over those names;
- ``postgresql://user:password@host:port/database`` (or ``postgres://``; libpq's parameters and
  environment, e.g. ``PGPASSWORD``, ``?sslmode=require``, ``?options=-csearch_path%3Dcrm``): the
  ADBC PostgreSQL driver, every table read in one read-only REPEATABLE READ transaction, so the
  export is one consistent snapshot; the extraction time defaults to the server's clock;
- ``redshift://user:password@cluster:5439/database``: Amazon Redshift through the same driver
  (PostgreSQL's protocol), without the PostgreSQL-only snapshot transaction;
- ``adbc+<driver>:<the driver's own URI>``: any ADBC driver, named by its Python package
  (``adbc_driver_snowflake``, ``adbc_driver_bigquery``, ...) or by a driver the ADBC driver
  manager finds (a manifest name or a shared library path, e.g. ``mysql``, ``mssql``); a driver
  configured by options instead of a URI takes ``adbc+<driver>:?option=value&...``;
- ``sqlalchemy+<SQLAlchemy URL>``: a database with a SQLAlchemy dialect and no ADBC driver
  (``features.sqlalchemy_source``), slower: rows become Arrow batches in Python.

Nothing here goes through pandas: drivers stream Arrow batches that the pull writes to Parquet.
"""

from __future__ import annotations

import contextlib
import importlib
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

import pyarrow as pa

from features.contract import MANIFEST_FILE
from features.mapping import SourceError

if TYPE_CHECKING:
    import duckdb

BATCH_ROWS = 128 * 1024  # rows per Arrow batch asked of a driver (bounded memory)


SECRET_KEYS = ("password", "pwd", "secret", "token", "credential", "private_key")


def _is_secret(key: str) -> bool:
    return any(word in key.lower() for word in SECRET_KEYS)


def mask_uri(uri: str) -> str:
    """The URI with any password replaced by ``***`` (user name, host and the rest kept): in
    ``user:password@``, and in options whose name says password, secret, token, credential."""
    prefix, inner = _split_adbc(uri)
    if inner is not None:
        return prefix + mask_uri(inner)
    parts = urlsplit(uri)
    if (not parts.scheme or len(parts.scheme) == 1) and "@" not in uri and "?" not in uri:
        return uri  # a path (or a Windows drive)
    base, sep, query = uri.partition("?")
    base = re.sub(r"(^|//)([^/:@?#]*):[^@/?#]*@", r"\1\2:***@", base)
    if sep:
        query = urlencode([(k, "***" if _is_secret(k) else v)
                           for k, v in parse_qsl(query, keep_blank_values=True)])
    return base + sep + query


def _split_adbc(uri: str) -> tuple[str, str | None]:
    """``adbc+driver:`` and the driver's URI, or (uri, None) for other URIs."""
    match = re.match(r"^(adbc\+[^:]+:)(.*)$", uri, flags=re.S)
    return (match.group(1), match.group(2)) if match else (uri, None)


def _secrets(uri: str) -> list[str]:
    """Every password-like value in a URI, to scrub from drivers' messages."""
    _, inner = _split_adbc(uri)
    text = inner if inner is not None else uri
    base, _, query = text.partition("?")
    found = [unquote(m.group(1)) for m in re.finditer(r"(?:^|//)[^/:@?#]*:([^@/?#]*)@", base)]
    found += [v for k, v in parse_qsl(query) if _is_secret(k)]
    return [secret for secret in found if secret]


class Source:
    """What a pull needs of a source: its tables, their columns, and batches of a query."""

    dialect = "duckdb"  # sqlglot dialect used to quote names in generated queries

    def __init__(self, uri: str):
        self.uri = uri
        self.stream_error: SourceError | None = None  # a driver error in the middle of a stream
        self.display = mask_uri(uri)
        self._secrets = _secrets(uri)

    def find_table(self, name: str) -> str | None:
        """The source's own spelling of table ``name`` (exact, else case-insensitive), if any."""
        raise NotImplementedError

    def table_columns(self, table: str) -> list[str]:
        raise NotImplementedError

    def stream(self, sql: str, what: str) -> pa.RecordBatchReader:
        """Batches of ``sql``; a failure is a ``SourceError`` about ``what``."""
        raise NotImplementedError

    def query_columns(self, sql: str, what: str) -> list[str]:
        """The columns ``sql`` would return, without running it where the source can say."""
        reader = self.stream(sql, what)
        names = reader.schema.names
        reader.close()
        return names

    def extracted_at(self) -> datetime | None:
        """The time the source says its data are as of (naive UTC), if it says."""
        return None

    def close(self) -> None:
        """Release the connection."""

    def select(self, table: str, columns: list[str]) -> str:
        """``SELECT <columns> FROM <table>`` quoted for this source's SQL."""
        from sqlglot import exp

        query = exp.select(*[exp.column(c, quoted=True) for c in columns]).from_(
            exp.to_table(table, quoted=True) if "." not in table
            else exp.to_table(".".join(f'"{p}"' for p in table.split(".")))
        )
        return query.sql(dialect=self.dialect)

    def scrub(self, text: str) -> str:
        """A driver's message without the password, in one line."""
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return " ".join(text.split())


def _pick(names: list[str], name: str) -> str | None:
    if name in names:
        return name
    folded = [n for n in names if n.lower() == name.lower()]
    return folded[0] if len(folded) == 1 else None


class FolderSource(Source):
    """A folder of Parquet/CSV files, one per table, read through DuckDB views."""

    def __init__(self, uri: str, folder: Path):
        from features.sources import RawFileError, _reader, connect

        super().__init__(uri)
        self.folder = folder
        if not folder.is_dir():
            raise SourceError(f"source {folder}: no such folder")
        self.con: duckdb.DuckDBPyConnection = connect()
        self.files: dict[str, Path] = {}
        for path in sorted(folder.iterdir(), key=lambda p: (p.stem, p.suffix != ".parquet")):
            if path.suffix in (".parquet", ".csv") and path.stem not in self.files:
                self.files[path.stem] = path
                try:
                    self.con.execute(f'CREATE VIEW "{path.stem}" AS SELECT * FROM {_reader(path)}')
                except (RawFileError, OSError) as exc:
                    raise SourceError(f"source {path}: {exc}") from exc
                except Exception as exc:  # DuckDB's reader errors
                    raise SourceError(f"source {RawFileError.of(path, exc)}") from exc

    def find_table(self, name: str) -> str | None:
        return _pick(list(self.files), name)

    def table_columns(self, table: str) -> list[str]:
        return [row[0] for row in self.con.execute(f'DESCRIBE "{table}"').fetchall()]

    def stream(self, sql: str, what: str) -> pa.RecordBatchReader:
        import duckdb

        try:
            return self.con.sql(sql).to_arrow_reader(BATCH_ROWS)
        except duckdb.Error as exc:
            raise SourceError(f"{what} fails in {self.display}: "
                              f"{self.scrub(str(exc).splitlines()[0])}") from exc

    def query_columns(self, sql: str, what: str) -> list[str]:
        import duckdb

        try:
            return self.con.sql(sql).columns  # bound, not run
        except duckdb.Error as exc:
            raise SourceError(f"{what} fails in {self.display}: "
                              f"{self.scrub(str(exc).splitlines()[0])}") from exc

    def extracted_at(self) -> datetime | None:
        from features.sources import read_manifest

        if not (self.folder / MANIFEST_FILE).exists():
            return None
        try:
            return read_manifest(self.folder)
        except ValueError as exc:
            raise SourceError(f"source {self.folder / MANIFEST_FILE}: {exc}") from exc

    def close(self) -> None:
        self.con.close()


#: How generated ``SELECT``s quote names, by a word in the driver's name (default: PostgreSQL's).
DRIVER_DIALECTS = {"bigquery": "bigquery", "snowflake": "snowflake", "mssql": "tsql",
                   "sqlserver": "tsql", "mysql": "mysql", "redshift": "redshift",
                   "duckdb": "duckdb", "sqlite": "sqlite"}


class AdbcSource(Source):
    """A database behind an ADBC driver (PostgreSQL through ``adbc-driver-postgresql``)."""

    dialect = "postgres"

    def __init__(self, uri: str, driver: str, driver_uri: str, postgres: bool,
                 dialect: str | None = None):
        super().__init__(uri)
        self.postgres = postgres
        self.dialect = dialect or next((d for word, d in DRIVER_DIALECTS.items()
                                        if word in driver.lower()), "postgres")
        self.conn = self._connect(driver, driver_uri)
        self._tables: dict[str | None, list[str]] | None = None
        self._cursors: list = []
        if postgres:  # one consistent snapshot for every table of the export
            self._run("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY",
                      "starting a read-only transaction")

    def _connect(self, driver: str, driver_uri: str):
        import adbc_driver_manager

        try:
            if self.postgres:
                import adbc_driver_postgresql.dbapi as pg

                return pg.connect(driver_uri)
            import adbc_driver_manager.dbapi as dbapi

            return dbapi.connect(driver=_driver_path(driver), db_kwargs=driver_options(driver_uri))
        except adbc_driver_manager.Error as exc:
            raise SourceError(f"cannot connect to {self.display}: {connect_problem(self, exc)}") \
                from None

    def _run(self, sql: str, what: str) -> list:
        import adbc_driver_manager

        try:
            with self.conn.cursor() as cursor:
                cursor.execute(sql)
                return cursor.fetchall()
        except adbc_driver_manager.Error as exc:
            raise SourceError(f"{what} fails in {self.display}: {driver_problem(self, exc)}") \
                from None

    def _listing(self) -> dict[str | None, list[str]]:
        """Tables per schema, from the driver's catalogue (no query that could fail and abort
        the transaction on a missing table)."""
        if self._tables is None:
            objects = self._catalogue(
                lambda: self.conn.adbc_get_objects(depth="tables").read_all().to_pylist())
            self._tables = {}
            for catalog in objects:
                for schema in catalog["catalog_db_schemas"] or []:
                    names = [t["table_name"] for t in schema["db_schema_tables"] or []]
                    self._tables.setdefault(schema["db_schema_name"], []).extend(names)
        return self._tables

    def find_table(self, name: str) -> str | None:
        listing = self._listing()
        schema, _, table = name.rpartition(".")
        if schema:
            found = _pick(listing.get(schema, []), table)
            return f"{schema}.{found}" if found else None
        search = ["public"] if self.postgres else []
        search += [s for s in listing if s not in search]
        for candidate in search:
            if found := _pick(listing.get(candidate, []), table):
                return found if candidate in ("public", None) else f"{candidate}.{found}"
        return None

    def table_columns(self, table: str) -> list[str]:
        schema, _, name = table.rpartition(".")
        return self._catalogue(
            lambda: self.conn.adbc_get_table_schema(name, db_schema_filter=schema or None).names)

    def _catalogue(self, call):
        """A catalogue look-up, its failure as a ``SourceError``."""
        import adbc_driver_manager

        try:
            return call()
        except adbc_driver_manager.Error as exc:
            raise SourceError(f"reading the table list of {self.display} fails: "
                              f"{driver_problem(self, exc)}") from None

    def query_columns(self, sql: str, what: str) -> list[str]:
        import adbc_driver_manager

        with self.conn.cursor() as cursor:
            try:
                return cursor.adbc_execute_schema(sql).names  # prepared, not run
            except adbc_driver_manager.NotSupportedError:
                pass
            except adbc_driver_manager.Error as exc:
                raise SourceError(f"{what} fails in {self.display}: "
                                  f"{driver_problem(self, exc)}") from None
        return super().query_columns(sql, what)

    def stream(self, sql: str, what: str) -> pa.RecordBatchReader:
        import adbc_driver_manager

        cursor = self.conn.cursor()
        self._cursors.append(cursor)  # its reader lives as long as the cursor
        cursor.adbc_statement.set_options(
            **{"adbc.postgresql.batch_size_hint_bytes": str(16 << 20)} if self.postgres else {})
        try:
            cursor.execute(sql)
            reader = cursor.fetch_record_batch()
        except adbc_driver_manager.Error as exc:
            raise SourceError(f"{what} fails in {self.display}: {driver_problem(self, exc)}") \
                from None
        return _plain_types(reader, self, what)

    def extracted_at(self) -> datetime | None:
        if not self.postgres:
            return None
        # After the snapshot is taken (the transaction's first query): every row it shows was
        # committed before this time.
        (stamp,), = self._run("SELECT clock_timestamp()", "reading the server clock")
        return stamp.astimezone(UTC).replace(tzinfo=None)

    def close(self) -> None:
        for cursor in self._cursors:
            with contextlib.suppress(Exception):
                cursor.close()
        try:
            self.conn.rollback()
        finally:
            self.conn.close()


def _plain_types(reader: pa.RecordBatchReader, source: Source, what: str) -> pa.RecordBatchReader:
    """Driver-specific extension types (PostgreSQL ``numeric`` arrives as an opaque type over
    text) as their storage type, which DuckDB reads; driver errors mid-stream as ``SourceError``."""
    import adbc_driver_manager

    schema = pa.schema([
        pa.field(f.name, f.type.storage_type if isinstance(f.type, pa.BaseExtensionType)
                 else f.type)
        for f in reader.schema
    ])

    def batches() -> Iterator[pa.RecordBatch]:
        try:
            for batch in reader:
                yield pa.RecordBatch.from_arrays(
                    [c.storage if isinstance(c, pa.ExtensionArray) else c for c in batch.columns],
                    schema=schema)
        except (adbc_driver_manager.Error, pa.ArrowException, OSError) as exc:
            # DuckDB, which pulls these batches, wraps what is raised here in its own error:
            # the pull reports this one instead.
            source.stream_error = SourceError(f"{what} fails in {source.display}: "
                                              f"{driver_problem(source, exc)}")
            raise source.stream_error from None

    return pa.RecordBatchReader.from_batches(schema, batches())


def driver_options(driver_uri: str) -> dict[str, str]:
    """The driver's database options: ``{"uri": ...}``, or, for a driver configured by options
    rather than a URI (BigQuery), ``?option=value&...`` as those options."""
    if driver_uri.startswith("?"):
        return dict(parse_qsl(driver_uri[1:], keep_blank_values=True))
    return {"uri": driver_uri}


def _driver_path(driver: str) -> str:
    """A Python driver package's shared library, else the name for the driver manager."""
    try:
        module = importlib.import_module(driver)
    except ImportError:
        return driver
    locate = getattr(module, "_driver_path", None)
    return locate() if locate else driver


def driver_problem(source: Source, exc: Exception) -> str:
    """The database's own message, without the driver's framing, the query or a password."""
    text = str(exc)
    text = re.sub(r"^[A-Z_]+: ", "", text)
    text = re.sub(r"^\[libpq\]\s*(?:Execution error \[[A-Z_]+\]:\s*)?", "", text)
    text = re.sub(r"^Failed to (?:prepare|execute) query: (?:could not begin COPY: )?", "", text)
    text = text.split("\nQuery was:")[0].split("\nLINE ")[0]
    text = re.sub(r"^ERROR:\s*", "", text.strip())
    return source.scrub(text)


def connect_problem(source: Source, exc: Exception) -> str:
    """Why a connection failed, as a person would say it; the password never appears."""
    text = driver_problem(source, exc)
    if "password authentication failed" in text or "authentication failed" in text:
        user = re.search(r'for user "([^"]+)"', text)
        return ("the server refused the user name or password"
                + (f" (user {user.group(1)})" if user else ""))
    if "Connection refused" in text or "could not connect" in text or "timeout" in text.lower():
        return "no database server answers there (check the host and port)"
    if "could not translate host name" in text:
        return "unknown host name"
    if re.search(r'database "[^"]+" does not exist', text):
        return re.search(r'database "[^"]+" does not exist', text).group(0)
    text = re.sub(r"^Failed to connect: ", "", text)
    text = re.sub(r'connection to server at "[^"]*" \([^)]*\), port \d+ failed: |'
                  r'connection to server at "[^"]*", port \d+ failed: ', "", text)
    return re.sub(r"^FATAL:\s*", "", text)


CONNECT_TIMEOUT_S = 15


def with_connect_timeout(uri: str) -> str:
    """A libpq URI that gives up on a silent host after ``CONNECT_TIMEOUT_S`` (libpq's default
    is to wait for ever), unless the URI sets its own ``connect_timeout``."""
    parts = urlsplit(uri)
    query = parse_qsl(parts.query, keep_blank_values=True)
    if any(key == "connect_timeout" for key, _ in query):
        return uri
    query.append(("connect_timeout", str(CONNECT_TIMEOUT_S)))
    return urlunsplit(parts._replace(query=urlencode(query)))


def open_source(uri: str) -> Source:
    """The source a URI names (see the module docstring); ``SourceError`` if it cannot be opened."""
    prefix, inner = _split_adbc(uri)
    if inner is not None:
        driver = prefix.removeprefix("adbc+").removesuffix(":")
        postgres = driver == "adbc_driver_postgresql"
        return AdbcSource(uri, driver, with_connect_timeout(inner) if postgres else inner,
                          postgres=postgres)
    scheme = urlsplit(uri).scheme.lower()
    if scheme.startswith("sqlalchemy+"):
        from features.sqlalchemy_source import SqlAlchemySource

        return SqlAlchemySource(uri, uri.removeprefix("sqlalchemy+"))
    if scheme in ("postgresql", "postgres"):
        return AdbcSource(uri, "adbc_driver_postgresql", with_connect_timeout(uri),
                          postgres=True)
    if scheme == "redshift":  # PostgreSQL's wire protocol; no REPEATABLE READ, no clock_timestamp
        driver_uri = with_connect_timeout("postgresql" + uri[len("redshift"):])
        return AdbcSource(uri, "adbc_driver_postgresql", driver_uri, postgres=False,
                          dialect="redshift")
    if scheme == "file":
        return FolderSource(uri, Path(unquote(urlsplit(uri).path)))
    if scheme and len(scheme) > 1:
        raise SourceError(
            f"source {mask_uri(uri)}: unknown kind {scheme!r} (give a folder, postgresql://..., "
            f"adbc+<driver>:<uri> or sqlalchemy+<url> for another database)")
    return FolderSource(uri, Path(uri))
