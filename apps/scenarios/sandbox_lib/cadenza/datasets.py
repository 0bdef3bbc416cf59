"""Datasets as pandas DataFrames, for Python recipes and steps.

from cadenza.datasets import read_dataset, write_dataset
orders = read_dataset("orders_clean")
write_dataset("orders_by_day", orders.groupby("day").sum().reset_index())
"""

from __future__ import annotations

import os
import uuid

from cadenza._rpc import call


def read_dataset(name: str):
    import duckdb

    path = call("read_dataset", name=name)
    return duckdb.sql(f"SELECT * FROM read_parquet('{path}')").df()


def write_dataset(name: str, frame) -> int:
    """Replace the dataset's data with ``frame``; returns the number of rows written."""
    import duckdb

    path = os.path.abspath(f"out-{uuid.uuid4().hex}.parquet")
    con = duckdb.connect()
    con.register("frame", frame)
    con.execute(f"COPY (SELECT * FROM frame) TO '{path}' (FORMAT parquet)")
    con.close()
    return call("write_dataset", name=name, path=path)
