"""py-spy profiles of a server: recording one, and summarising it into its top entries."""

from __future__ import annotations

import subprocess
from collections import Counter
from pathlib import Path


def record(pid: int, seconds: float, raw: Path) -> subprocess.Popen:
    """py-spy sampling every thread of ``pid`` at 100 Hz for ``seconds``, collapsed stacks to ``raw``."""
    return subprocess.Popen(
        [
            "py-spy",
            "record",
            "-p",
            str(pid),
            "-r",
            "100",
            "-d",
            str(int(seconds)),
            "-f",
            "raw",
            "-o",
            str(raw),
            "--threads",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def summarize(raw: Path, top: int = 25) -> dict:
    """Top functions by own time and by inclusive time, in % of all samples."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    threads: Counter[str] = Counter()
    total = 0
    if not raw.exists():
        return {"samples": 0, "own": [], "inclusive": [], "threads": []}
    for line in raw.read_text(errors="replace").splitlines():
        if not line.strip():
            continue
        stack, _, count = line.rpartition(" ")
        n = int(count)
        total += n
        frames = stack.split(";")
        threads[frames[0]] += n
        own[frames[-1]] += n
        for frame in set(frames[1:]):
            inclusive[frame] += n

    def pct(counter: Counter) -> list[tuple[float, str]]:
        return [(round(100 * n / total, 1), f) for f, n in counter.most_common(top)]

    return {"samples": total, "threads": pct(threads), "own": pct(own), "inclusive": pct(inclusive)}
