"""Start-up cost of the ``gancodec`` command, as a ratio to importing Pillow.

    python benchmarks/cli_startup.py [--rounds 15]

Times, in fresh interpreters, ``gancodec --help`` (``python -m gancodec --help``), ``gancodec
info`` on a missing file (the parser, then one error line: no codec loaded) and, for contrast,
``import gancodec; gancodec.compress`` (torch and the codec), each against ``python -c "import
PIL.Image"``. Rounds alternate the commands; medians are compared. Issue 21 asks for ``--help``
within 3x of the Pillow import: the CLI and ``import gancodec`` load torch only when a command
needs it (docs/architecture.md). Exits 1 when ``--help`` is over 3x.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

COMMANDS = {
    "python -c 'import PIL.Image'": [sys.executable, "-c", "import PIL.Image"],
    "gancodec --help": [sys.executable, "-m", "gancodec", "--help"],
    "gancodec info missing.gcx": [sys.executable, "-m", "gancodec", "info", "missing.gcx"],
    "import gancodec; gancodec.compress": [sys.executable, "-c", "import gancodec; gancodec.compress"],
}
LIMIT = 3.0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=15)
    a = p.parse_args()
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    times: dict[str, list[float]] = {name: [] for name in COMMANDS}
    for name, cmd in COMMANDS.items():  # warm the OS file cache and the bytecode caches once
        subprocess.run(cmd, capture_output=True, env=env)
    for _ in range(a.rounds):
        for name, cmd in COMMANDS.items():
            t = time.perf_counter()
            subprocess.run(cmd, capture_output=True, env=env)
            times[name].append(time.perf_counter() - t)
    base_name = next(iter(COMMANDS))
    base = statistics.median(times[base_name])
    print(f"{'command':<38} {'median s':>9} {'x Pillow':>9}   ({a.rounds} rounds)")
    for name, values in times.items():
        m = statistics.median(values)
        print(f"{name:<38} {m:9.3f} {m / base:9.2f}")
    ratio = statistics.median(times["gancodec --help"]) / base
    verdict = "within" if ratio <= LIMIT else "OVER"
    print(f"\ngancodec --help is {ratio:.2f}x the Pillow import: {verdict} the {LIMIT:g}x budget")
    return 0 if ratio <= LIMIT else 1


if __name__ == "__main__":
    sys.exit(main())
