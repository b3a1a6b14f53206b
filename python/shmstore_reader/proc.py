"""Processes: whether one still runs, since when, and as whom.

Telling a slow creator from a dead one (FORMAT.md, "Creation") needs to
know whether the segment's creator still runs. A pid alone does not say
it: pids are reused, and a zombie has a pid but will write nothing more.
So a process is alive if `kill(pid, 0)` finds it (a permission error
still means it exists) and not every one of its threads is a zombie or
dead in /proc/PID/task/*/stat; its start time (in clock ticks since boot,
field 22 of /proc/PID/stat) tells it from a later process with the same
pid, and its user ids (/proc/PID/status) from one of another user.

Everything here reads /proc only; in another PID namespace than the
segment's creator, the pids mean other processes (FORMAT.md says so too).
"""

from __future__ import annotations

import os
from typing import Optional


def _stat_fields(pid: int, path: Optional[str] = None) -> Optional[list]:
    try:
        with open(path or f"/proc/{pid}/stat", "rb") as f:
            text = f.read().decode("utf-8", "replace")
    except OSError:
        return None
    cut = text.rfind(")")
    return text[cut + 1 :].split() if cut >= 0 else None


def _is_zombie(pid: int) -> bool:
    def dead(fields):
        return bool(fields) and fields[0] in ("Z", "X")

    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return dead(_stat_fields(pid))
    return all(dead(_stat_fields(pid, f"/proc/{pid}/task/{t}/stat")) for t in tasks)


def process_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    except OSError:
        return False
    return not _is_zombie(pid)


def process_start_time(pid: int) -> Optional[int]:
    fields = _stat_fields(pid)
    try:
        return int(fields[19]) if fields else None
    except (IndexError, ValueError):
        return None


def process_started_at(pid: int) -> Optional[float]:
    ticks = process_start_time(pid)
    if ticks is None:
        return None
    try:
        with open("/proc/stat") as f:
            btime = next(int(l.split()[1]) for l in f if l.startswith("btime "))
        hz = os.sysconf("SC_CLK_TCK")
    except (OSError, StopIteration, ValueError):
        return None
    return btime + ticks / hz if hz > 0 else None


def process_uids(pid: int) -> Optional[list]:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("Uid:"):
                    return [int(u) for u in line.split()[1:]]
    except (OSError, ValueError):
        return None
    return None
