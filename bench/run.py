"""Run the benchmarks: `python -m bench.run [dispatch|live_log|idle|throughput|api|beat ...]
[--markdown] [--saved]`.

Each writes bench/results/<name>.json (the machine, every figure with its floor, the raw
samples); the table at the end puts each figure beside its floor and its target.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import sys
import time
import traceback
from importlib import import_module
from pathlib import Path

if __package__ in (None, ""):  # `python bench/run.py` as well as `python -m bench.run`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.stats import Figure, markdown_table, text_table  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
BENCHMARKS = {
    "dispatch": "bench.dispatch",
    "live_log": "bench.live_log",
    "idle": "bench.idle",
    "flow": "bench.flow",
    "triggers": "bench.triggers",
    "throughput": "bench.throughput",
    "api": "bench.api",
    "beat": "bench.beat",
}


def machine() -> dict:
    cpuinfo = Path("/proc/cpuinfo").read_text()
    models = [line.split(":", 1)[1].strip() for line in cpuinfo.splitlines()
              if line.startswith("model name")]  # fmt: skip
    meminfo = dict(line.split(":", 1) for line in Path("/proc/meminfo").read_text().splitlines())
    return {
        "cpu": models[0] if models else platform.machine(),
        "cores": os.cpu_count(),
        "ram_gb": round(int(meminfo["MemTotal"].split()[0]) / 1024**2, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "load_before": load_average(),
    }


def load_average() -> float:
    """The 1-minute load average: other work on the machine skews every figure."""
    return float(Path("/proc/loadavg").read_text().split()[0])


def _interrupted(signum, frame):
    raise KeyboardInterrupt  # a killed `make bench` still stops its servers (try/finally)


def run_one(name: str, host: dict) -> list[Figure]:
    print(f"== {name}", flush=True)
    started, load_before = time.monotonic(), load_average()
    figures = import_module(BENCHMARKS[name]).run()
    seconds = round(time.monotonic() - started, 1)
    RESULTS.mkdir(exist_ok=True)
    result = {
        "name": name,
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "seconds": seconds,
        "machine": host,
        "load_average": {"before": load_before, "after": load_average()},
        "figures": [figure.as_dict() for figure in figures],
    }
    (RESULTS / f"{name}.json").write_text(json.dumps(result, indent=1, default=str) + "\n")
    print(f"   {name}: {seconds} s → {RESULTS / f'{name}.json'}", flush=True)
    return figures


def saved(name: str) -> list[Figure]:
    """The figures of the last run of ``name``, from bench/results/<name>.json."""
    path = RESULTS / f"{name}.json"
    if not path.exists():
        return []
    fields = set(Figure.__dataclass_fields__)
    figures = []
    for data in json.loads(path.read_text())["figures"]:
        figure = Figure(**{key: value for key, value in data.items() if key in fields})
        figure.target = tuple(figure.target) if figure.target else None
        figures.append(figure)
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("names", nargs="*", help=f"some of {', '.join(BENCHMARKS)} (all)")
    parser.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    parser.add_argument("--saved", action="store_true", help="show the last results, run nothing")
    options = parser.parse_args()
    unknown = set(options.names) - set(BENCHMARKS)
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(sorted(unknown))}")
    table = markdown_table if options.markdown else text_table
    if options.saved:
        print(table([figure for name in options.names or BENCHMARKS for figure in saved(name)]))
        return 0
    signal.signal(signal.SIGTERM, _interrupted)
    host, figures, failed = machine(), [], []
    print(f"Machine: {host}")
    if host["load_before"] > 0.5:
        print(f"Warning: load average {host['load_before']} — other work skews the figures.")
    for name in options.names or BENCHMARKS:
        try:
            figures += run_one(name, host)
        except Exception:
            traceback.print_exc()
            failed.append(name)
    print()
    print(table(figures))
    if failed:
        print(f"\nFailed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
