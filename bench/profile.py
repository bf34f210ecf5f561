"""Where a console's workers spend their time under a load: py-spy samples every worker
while the load runs, and the samples are summed by function (inclusive: a function counts
for every sample in which it is on the stack)."""

from __future__ import annotations

import collections
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.harness import PROJECT, Console

RATE = 250  # samples a second per worker


def py_spy() -> str | None:
    found = shutil.which("py-spy") or (PROJECT / ".venv" / "bin" / "py-spy")
    return str(found) if Path(found).exists() else None


def profile_under(console: Console, seconds: float, load: Callable[[], Any]) -> dict[str, Any]:
    """Run ``load`` (which should last about ``seconds``) while py-spy samples each worker."""
    binary = py_spy()
    if binary is None:
        return {"error": "py-spy is not installed (it is in requirements-dev.txt)"}
    directory = Path(tempfile.mkdtemp(prefix="sofiia-profile-"))
    try:
        samplers = [
            subprocess.Popen(
                [
                    binary, "record", "--pid", str(pid), "--duration", str(max(1, round(seconds))),
                    "--rate", str(RATE), "--nonblocking", "--format", "raw", "--output", str(directory / f"{pid}.txt"),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            for pid in console.worker_pids()
        ]  # fmt: skip
        load()
        for sampler in samplers:
            sampler.wait(timeout=60)
        return summarize(path for path in directory.glob("*.txt"))
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def _frame_name(frame: str) -> str:
    # py-spy's raw format: "function (path/to/file.py:line)"; the line is dropped so that a
    # function counts once whatever line it was on.
    name, _, where = frame.partition(" (")
    path = where.rsplit(":", 1)[0]
    for marker in ("site-packages/", str(PROJECT) + "/", "lib/python3.11/"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{name} ({path})"


def summarize(paths: Any, top: int = 60) -> dict[str, Any]:
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    for path in paths:
        for line in Path(path).read_text().splitlines():
            stack, _, count_text = line.rpartition(" ")
            if not stack:
                continue
            count = int(count_text)
            frames = {_frame_name(frame) for frame in stack.split(";")}
            total += count
            for frame in frames:
                inclusive[frame] += count
    return {
        # py-spy leaves out idle samples: these are the workers' CPU time.
        "samples": total,
        "top_inclusive": [(frame, round(count / total, 3)) for frame, count in inclusive.most_common(top)]
        if total
        else [],
    }
