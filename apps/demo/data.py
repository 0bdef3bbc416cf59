"""The demo's data files: orders generated from a fixed seed, so every installation (and every
test) gets the same rows, with a signal a model can learn (gadgets sold at a big discount
come back more often)."""

from __future__ import annotations

import csv
import io
import random
from datetime import date, timedelta

COLUMNS = ["order_id", "day", "region", "product", "quantity", "unit_price", "discount"]
COLUMNS += ["amount", "returned"]
REGIONS = ["North", "South", "East", "West"]
PRODUCTS = {"widget": 12.0, "gadget": 45.0, "gizmo": 28.0, "doohickey": 7.5}
FIRST_DAY = date(2025, 1, 1)

DROP_README = """\
Drop CSV files here: the demo scenario "Ingest drop folder" reads every file of this folder
into the dataset dropped_orders. Use the columns of orders.csv:

    {columns}

The "New files in the drop folder" trigger checks this folder every 5 seconds. Dataset-change
triggers need the Team edition: without a license it is created switched off; run the
scenario by hand, or install a license and switch the trigger on.

This file starts with a dot, so Cadenza ignores it: it is neither data nor a change.
"""


def _orders(rng: random.Random, first_id: int, days: int, first_day: date) -> list[list]:
    rows, order_id = [], first_id
    for offset in range(days):
        day = first_day + timedelta(days=offset)
        for _ in range(rng.randint(4, 12)):
            product = rng.choice(list(PRODUCTS))
            quantity = rng.randint(1, 10)
            unit_price = round(PRODUCTS[product] * rng.uniform(0.85, 1.15), 2)
            discount = rng.choice([0.0, 0.0, 0.1, 0.2])
            odds = 0.05 + 0.3 * (product == "gadget") + 0.3 * (discount >= 0.2)
            rows.append(
                [
                    order_id,
                    day.isoformat(),
                    rng.choice(REGIONS),
                    product,
                    quantity,
                    unit_price,
                    discount,
                    round(quantity * unit_price * (1 - discount), 2),
                    int(rng.random() < odds),
                ]
            )
            order_id += 1
    return rows


def _csv(rows: list[list]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    writer.writerows(rows)
    return out.getvalue()


def orders_csv() -> str:
    """120 days of orders (about a thousand rows)."""
    return _csv(_orders(random.Random(7), 1, 120, FIRST_DAY))


def drop_sample_csv() -> str:
    """A first file for the drop folder: one more week of orders."""
    return _csv(_orders(random.Random(11), 100_001, 7, FIRST_DAY + timedelta(days=120)))


def drop_readme() -> str:
    return DROP_README.format(columns=",".join(COLUMNS))
