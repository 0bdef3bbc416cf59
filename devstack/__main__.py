"""`python -m devstack DIR`: start PostgreSQL and Redis under DIR, print their URLs as
shell exports, and keep them running until interrupted."""

from __future__ import annotations

import signal
import sys
from pathlib import Path

from devstack import Postgres, Redis


def main() -> None:
    root = Path(sys.argv[1] if len(sys.argv) > 1 else "var/devstack").resolve()
    postgres = Postgres(root / "postgres", port=int(sys.argv[2]) if len(sys.argv) > 2 else 0)
    redis = Redis(root / "redis", port=int(sys.argv[3]) if len(sys.argv) > 3 else 0)
    postgres.start()
    try:
        redis.start()
        print(f"export DATABASE_URL={postgres.url}", flush=True)
        print(f"export REDIS_URL={redis.url}", flush=True)
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        signal.pause()
    except KeyboardInterrupt:
        pass
    finally:
        redis.stop()
        postgres.stop()


if __name__ == "__main__":
    main()
