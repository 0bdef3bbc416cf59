"""`make bench`: the performance suite (docs/performance.md). Plain scripts, not tests.

Each benchmark starts its own servers on loopback, measures a figure beside its floor (the
bare component doing the least possible work, in the same run) and stops everything it
started. ``python -m bench.run [name ...]`` runs them and writes ``bench/results/<name>.json``.
"""
