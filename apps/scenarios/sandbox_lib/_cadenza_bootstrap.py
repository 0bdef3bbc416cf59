"""Entry point of a sandbox child: set the import path, run the user's code as __main__."""

import os
import runpy
import sys

for path in reversed(os.environ.get("CADENZA_PATHS", "").split(os.pathsep)):
    if path:
        sys.path.insert(0, path)
script = sys.argv[1]
sys.argv = [script]
runpy.run_path(script, run_name="__main__")
