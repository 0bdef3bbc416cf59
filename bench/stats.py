"""Figures: a measured value beside its floor from the same run, the ratio, and the target."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

PERCENTILES = ("p50", "p95", "p99")


def percentile(samples: list[float], p: float) -> float:
    """Linear interpolation between the closest ranks (numpy's default)."""
    if not samples:
        return math.nan
    ordered = sorted(samples)
    rank = (len(ordered) - 1) * p / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def distribution(samples: list[float]) -> dict[str, float]:
    stats = {name: percentile(samples, float(name[1:])) for name in PERCENTILES}
    return {**stats, "max": max(samples) if samples else math.nan}


@dataclass
class Figure:
    bench: str
    metric: str
    unit: str
    value: dict[str, float]  # {"p50": …, "p95": …} or {"value": …}
    floor_name: str
    floor: dict[str, float]
    n: int = 0
    target: tuple[str, float] | None = None  # (stat, maximum), e.g. ("p95", 100)
    notes: dict = field(default_factory=dict)
    at_least: bool = False  # the target is a minimum (a rate), not a maximum
    max_ratio: tuple[str, float] | None = None  # (stat, most × floor), e.g. ("p95", 1.5)

    @property
    def ratio(self) -> dict[str, float]:
        return {
            key: self.value[key] / self.floor[key] if self.floor.get(key) else math.inf
            for key in self.value
            if key in self.floor
        }

    @property
    def met(self) -> bool | None:
        if self.target is None and self.max_ratio is None:
            return None
        met = True
        if self.target is not None:
            stat, bound = self.target
            met = self.value[stat] >= bound if self.at_least else self.value[stat] <= bound
        if self.max_ratio is not None:
            stat, most = self.max_ratio
            met = met and self.ratio[stat] <= most
        return met

    def as_dict(self) -> dict:
        return {**asdict(self), "ratio": self.ratio, "met": self.met}


# -- presentation ----------------------------------------------------------------------------


def _number(value: float) -> str:
    if math.isinf(value) or math.isnan(value):
        return "–"
    return f"{value:.0f}" if abs(value) >= 100 else f"{value:.3g}"


def _stats(values: dict[str, float], keys: list[str]) -> str:
    return " / ".join(_number(values[key]) for key in keys if key in values)


def _keys(figure: Figure) -> list[str]:
    return [key for key in (*PERCENTILES, "value") if key in figure.value]


def _target(figure: Figure) -> str:
    parts = []
    if figure.target is not None:
        stat, bound = figure.target
        parts.append(f"{stat} {'≥' if figure.at_least else '≤'} {_number(bound)} {figure.unit}")
    if figure.max_ratio is not None:
        stat, most = figure.max_ratio
        parts.append(f"{stat} ≤ {_number(most)}× floor")
    if not parts:
        return ""
    return f"{', '.join(parts)}  {'ok' if figure.met else 'MISSED'}"


def rows(figures: list[Figure]) -> list[list[str]]:
    table = [["bench", "figure", "measured", "floor", "× floor", "target"]]
    for figure in figures:
        keys = _keys(figure)
        label = "/".join(keys) if keys != ["value"] else ""
        table.append(
            [
                figure.bench,
                f"{figure.metric} [{figure.unit}{', ' + label if label else ''}]",
                _stats(figure.value, keys),
                _stats(figure.floor, keys),
                _stats(figure.ratio, keys[:2]),
                _target(figure),
            ]
        )
    return table


def text_table(figures: list[Figure]) -> str:
    table = rows(figures)
    widths = [max(len(row[column]) for row in table) for column in range(len(table[0]))]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        for row in table
    ]
    lines.insert(1, "  ".join("-" * width for width in widths))
    floors = [f"  {figure.metric}: floor = {figure.floor_name}" for figure in figures]
    return "\n".join([*lines, "", "Floors:", *floors])


def markdown_table(figures: list[Figure]) -> str:
    table = rows(figures)
    lines = ["| " + " | ".join(row) + " |" for row in table]
    lines.insert(1, "|" + "---|" * len(table[0]))
    return "\n".join(lines)
