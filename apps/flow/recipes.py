"""Executing one recipe: SQL (DuckDB over files, or in the database of its tables), Python
(in the sandbox, datasets exchanged as Parquet files), sync (copy across connections)."""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

import psycopg

from apps.flow import storage
from apps.flow.models import Dataset, Recipe
from apps.flow.storage import FlowError, duckdb, quote


@dataclass
class RecipeRun:
    """What a recipe needs from whoever runs it (a build step)."""

    log: Callable[..., None]
    cancel: threading.Event
    timeout: float | None = None
    # Whose rights the recipe runs with: every connection it reads or writes must be theirs
    # to use (a recipe whose input sat on a connection of another group copied its data out).
    user: object = field(kw_only=True)
    # Output dataset name → the schema its recipe learnt while writing it (the build engine
    # then need not read the new data again to store it).
    schemas: dict[str, list[dict]] = field(default_factory=dict)


def execute(recipe: Recipe, run: RecipeRun) -> dict[str, int]:
    """Run the recipe; returns rows written per output dataset. FlowError on failure."""
    inputs = list(recipe.inputs.select_related("connection"))
    outputs = list(recipe.outputs.select_related("connection"))
    for dataset in [*inputs, *outputs]:
        if not dataset.connection.usable_by(run.user):
            raise FlowError(
                f"Recipe {recipe.name}: {run.user or 'nobody'} may not use the connection "
                f"{dataset.connection.name} (of {dataset.name})."
            )
    if not outputs:
        raise FlowError(f"Recipe {recipe.name} has no output dataset.")
    runner = {"sql": _sql, "python": _python, "sync": _sync}[recipe.kind]
    return runner(recipe, inputs, outputs, run)


def _sql(recipe, inputs, outputs, run) -> dict[str, int]:
    if len(outputs) != 1:
        raise FlowError(f"SQL recipe {recipe.name} must have exactly one output.")
    output = outputs[0]
    if not output.connection.is_sql and not any(d.connection.is_sql for d in inputs):
        rows, run.schemas[output.name] = _sql_duckdb(recipe, inputs, output)
        return {output.name: rows}
    connections = {d.connection_id for d in [*inputs, output]}
    if len(connections) != 1:
        raise FlowError(
            f"SQL recipe {recipe.name}: inputs and output must share one connection "
            "(or all be files); use a sync recipe to move data first."
        )
    return {output.name: _sql_in_database(recipe, output)}


def _sql_duckdb(recipe: Recipe, inputs: list[Dataset], output: Dataset) -> tuple[int, list]:
    """The recipe's query over its inputs, named as datasets: common table expressions first,
    else (a statement a WITH may not lead, a CTE of the recipe's own with an input's name)
    views. A view is bound twice, made and then used, and binding a CSV samples the file: on
    5M rows, 20 ms each time."""
    with_inputs = _with_inputs(recipe.code, inputs)
    con = storage.duckdb_connect(datasets=inputs, files=[storage.staging_path(output)])
    try:
        try:
            return storage.copy_query_to_files(output, con, with_inputs)
        except (duckdb.ParserException, duckdb.BinderException, duckdb.CatalogException):
            pass  # refused while binding, before any row: the views answer as they always did
        for dataset in inputs:
            con.execute(
                f"CREATE TEMP VIEW {quote(dataset.name)} AS SELECT * FROM "
                f"{storage.duckdb_source(dataset)}"
            )
        return storage.copy_query_to_files(output, con, recipe.code)
    except duckdb.Error as error:
        raise FlowError(f"SQL recipe {recipe.name}: {error}") from None
    finally:
        storage.close_later(con)


def _with_inputs(sql: str, inputs: list[Dataset]) -> str:
    """``sql`` with each input as an inlined (NOT MATERIALIZED: read where used, like a view)
    common table expression, merged into the statement's own WITH [RECURSIVE] if it has one."""
    if not inputs:
        return sql
    ctes = ", ".join(
        f"{quote(d.name)} AS NOT MATERIALIZED (SELECT * FROM {storage.duckdb_source(d)})"
        for d in inputs
    )
    tokens = duckdb.tokenize(sql)  # (start, kind): the statement's words, not its comments
    ends = [at for at, _ in tokens[1:]] + [len(sql)]
    words = [
        (at, sql[at:end].strip().lower())
        for (at, kind), end in zip(tokens, ends, strict=True)
        if kind != duckdb.token_type.comment
    ]
    if not words or words[0][1] != "with":
        return f"WITH {ctes}\n{sql}"
    recursive = len(words) > 1 and words[1][1] == "recursive"
    rest = sql[words[2 if recursive else 1][0] :] if len(words) > 1 + recursive else ""
    return f"WITH {'RECURSIVE ' if recursive else ''}{ctes},\n{rest}"


def _sql_in_database(recipe: Recipe, output: Dataset) -> int:
    table = quote(output.table_name)
    try:
        with storage.sql_connect(output.connection) as db:
            cursor = db.cursor()
            cursor.execute(f"DROP TABLE IF EXISTS {table}")
            cursor.execute(f"CREATE TABLE {table} AS {recipe.code}")
            cursor.execute(f"SELECT count(*) FROM {table}")
            return cursor.fetchone()[0]
    except (psycopg.Error, sqlite3.Error) as error:
        raise FlowError(f"SQL recipe {recipe.name}: {error}".strip()) from None


def _sync(recipe, inputs, outputs, run) -> dict[str, int]:
    if len(inputs) != 1 or len(outputs) != 1:
        raise FlowError(f"Sync recipe {recipe.name} copies one input to one output.")
    schema, frames = storage.read_frames(inputs[0])
    return {outputs[0].name: storage.write_frames(outputs[0], schema, frames)}


def _python(recipe, inputs, outputs, run) -> dict[str, int]:
    from apps.scenarios.sandbox import Limits, Sandbox

    written: dict[str, int] = {}
    allowed_in = {d.name: d for d in inputs}
    allowed_out = {d.name: d for d in outputs}

    def handle(method: str, params: dict):
        if method == "log":
            run.log(str(params.get("message", "")))
            return None
        if method == "read_dataset":
            return _export(sandbox, _pick(allowed_in, params.get("name"), "input"))
        if method == "write_dataset":
            dataset = _pick(allowed_out, params.get("name"), "output")
            written[dataset.name] = _import(sandbox, dataset, params.get("path", ""))
            return written[dataset.name]
        raise ValueError(f"{method!r} is not available in a recipe")

    sandbox = Sandbox(
        on_stdout=run.log,
        on_stderr=lambda line: run.log(line, level="error"),
        handle_call=handle,
        cancel=run.cancel,
        limits=Limits.from_settings(run.timeout),
    )
    result = sandbox.run_python(recipe.code)
    if not result.ok:
        raise FlowError(f"Python recipe {recipe.name} failed: {result.describe()}")
    missing = set(allowed_out) - set(written)
    if missing:
        raise FlowError(f"Python recipe {recipe.name} did not write {', '.join(sorted(missing))}.")
    return written


def _pick(datasets: dict[str, Dataset], name, role: str) -> Dataset:
    if name not in datasets:
        raise ValueError(f"{name!r} is not an {role} of this recipe ({', '.join(datasets)})")
    return datasets[name]


def _export(sandbox, dataset: Dataset) -> str:
    target = sandbox.share(f"in-{dataset.name}.parquet")
    schema, frames = storage.read_frames(dataset)
    con = storage.duckdb_connect(files=[target])
    columns = ", ".join(f"{quote(c['name'])} {c['type']}" for c in schema)
    con.execute(f"CREATE TABLE data ({columns})")
    for frame in frames:
        con.register("frame", frame)
        con.execute("INSERT INTO data SELECT * FROM frame")
        con.unregister("frame")
    con.execute(f"COPY data TO {storage.literal(target)} (FORMAT parquet, USE_TMP_FILE false)")
    con.close()
    sandbox.give(target)
    return str(target)


def _import(sandbox, dataset: Dataset, path: str) -> int:
    try:
        descriptor = sandbox.open_childs_file(path)
    except ValueError as error:
        raise ValueError(f"write_dataset: {error}") from None
    source = f"/proc/self/fd/{descriptor}"  # the file opened, whatever its name leads to now
    try:
        con = storage.duckdb_connect(files=[source])
        relation = con.sql(f"SELECT * FROM read_parquet({storage.literal(source)})")
        schema, frames = storage.relation_schema(relation), storage.relation_frames(relation)
        try:
            return storage.write_frames(dataset, schema, frames)
        finally:
            con.close()
    finally:
        os.close(descriptor)
