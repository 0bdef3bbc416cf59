"""JSON lines over two pipes to the worker that started this process."""

from __future__ import annotations

import json
import os
import threading

_lock = threading.Lock()
_files = None


class CadenzaError(Exception):
    """The worker refused or failed a call (e.g. no permission, unknown scenario)."""


def _pipes():
    global _files
    if _files is None:
        read_fd, write_fd = (int(fd) for fd in os.environ["CADENZA_RPC_FDS"].split(","))
        _files = (
            os.fdopen(read_fd, "r", encoding="utf-8"),
            os.fdopen(write_fd, "w", encoding="utf-8"),
        )
    return _files


def call(method: str, **params):
    with _lock:
        reader, writer = _pipes()
        writer.write(json.dumps({"method": method, "params": params}) + "\n")
        writer.flush()
        line = reader.readline()
    if not line:
        raise CadenzaError("the worker closed the connection")
    answer = json.loads(line)
    if "error" in answer:
        raise CadenzaError(answer["error"])
    return answer.get("result")
