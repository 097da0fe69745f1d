"""Summarising a py-spy raw (collapsed stacks) profile into its top entries."""

from __future__ import annotations

from collections import Counter
from pathlib import Path


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
