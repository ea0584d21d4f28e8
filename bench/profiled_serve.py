"""``fluxwarden serve`` with cProfile switched on and off by signals, so a profile holds only the load window.

``python -m cProfile -m fluxwarden.cli.main serve`` would also count imports, certificate loading
and idle time before and after the load. Here SIGUSR1 starts profiling and SIGUSR2 stops it and
writes the stats to ``--profile-out``. Run as
``python -m bench.profiled_serve --profile-out FILE serve [fluxwarden serve flags]``.
"""

from __future__ import annotations

import cProfile
import os
import signal
import sys
from types import FrameType

from fluxwarden.cli.main import main as fluxwarden_main


def main() -> int:
    if len(sys.argv) < 3 or sys.argv[1] != "--profile-out":
        print(__doc__, file=sys.stderr)
        return 2
    out, argv = sys.argv[2], sys.argv[3:]
    profiler = cProfile.Profile()

    def start(signum: int, frame: FrameType | None) -> None:
        profiler.enable()

    def stop(signum: int, frame: FrameType | None) -> None:
        profiler.disable()
        profiler.dump_stats(out + ".partial")
        os.replace(out + ".partial", out)  # whoever waits for ``out`` sees it whole

    signal.signal(signal.SIGUSR1, start)
    signal.signal(signal.SIGUSR2, stop)
    return fluxwarden_main(argv)


if __name__ == "__main__":
    sys.exit(main())
