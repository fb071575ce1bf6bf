"""Run the ``stress`` tests (timing, subprocesses, signals, worker processes, ports) several times beside CPU hogs.

    python tests/stress_run.py [--runs 5] [--hogs 2] [-- extra pytest arguments]

Starts ``--hogs`` busy-looping Python processes, runs ``pytest -m stress`` ``--runs`` times in a row and exits 1 if
any run failed. The hogs are stopped on every exit path: normally, on an exception or Ctrl-C / SIGTERM here, and,
since each hog watches its parent, even when this script is killed outright. ``make test-stress`` calls it.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# a plain `while True: pass`, that also ends when its parent is gone (so a SIGKILLed runner leaves no hog behind)
HOG = "import os\nparent = os.getppid()\nwhile os.getppid() == parent:\n    pass\n"


def _sigterm(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")  # unwinds through the finally that stops the hogs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5, help="pytest runs (default 5)")
    parser.add_argument("--hogs", type=int, default=2, help="busy-looping processes beside them (default 2)")
    parser.add_argument("pytest_args", nargs="*", help="extra pytest arguments (after --)")
    args = parser.parse_args(argv)

    signal.signal(signal.SIGTERM, _sigterm)
    hogs = [subprocess.Popen([sys.executable, "-c", HOG]) for _ in range(args.hogs)]
    results: list[tuple[int, float]] = []
    start = time.perf_counter()
    try:
        for run in range(1, args.runs + 1):
            print(f"== stress run {run}/{args.runs} beside {args.hogs} CPU hogs", flush=True)
            t0 = time.perf_counter()
            cmd = [sys.executable, "-m", "pytest", "-m", "stress", "-q", "-p", "no:cacheprovider", *args.pytest_args]
            rc = subprocess.call(cmd, cwd=ROOT)
            results.append((rc, time.perf_counter() - t0))
            print(f"== stress run {run}/{args.runs}: {'passed' if rc == 0 else f'FAILED (exit {rc})'} "
                  f"in {results[-1][1]:.0f} s", flush=True)  # fmt: skip
    except KeyboardInterrupt:
        print("== stress runs interrupted", flush=True)
        return 130
    finally:
        for hog in hogs:
            hog.kill()
        for hog in hogs:
            hog.wait()
    passed = sum(rc == 0 for rc, _ in results)
    print(f"== stress: {passed}/{len(results)} runs passed in {time.perf_counter() - start:.0f} s "
          f"(runs: {', '.join(f'{s:.0f} s' for _, s in results)})")  # fmt: skip
    return 0 if passed == len(results) == args.runs else 1


if __name__ == "__main__":
    os.chdir(ROOT)
    sys.exit(main())
