"""The periodic ``metrics`` message: one window of lane activity plus the health of the box itself.

Counters are per window (``window_start`` .. ``window_end``, contiguous from one message to the next
while the agent runs), computed from the store rather than counted in memory, so an agent restart
loses no transaction: the first window after a start begins where the last published one ended.
Nothing personal: decisions, reason codes, timings and score histograms only.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import time
from collections import Counter
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from contract.topics import Topics
from edge_agent.publisher import Outgoing
from kiosk.store import Store
from kiosk.store.records import to_iso

METRICS_SCHEMA = 1
WINDOW_META_KEY = "metrics_window_end"
# Face match scores are similarities in [0, 1]; the decision thresholds sit around 0.7.
SCORE_EDGES = (0.0, 0.3, 0.5, 0.6, 0.65, 0.7, 0.72, 0.74, 0.76, 0.78, 0.8, 0.85, 0.9, 1.0)
STAGE_EDGES_MS = (10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000)
FAILURE_TO_ACQUIRE = {
    "document": "DOCUMENT_UNREADABLE",
    "face": "FACE_NOT_ACQUIRED",
    "fingerprint": "FINGERPRINT_NOT_ACQUIRED",
}
MAX_FIRST_WINDOW = timedelta(days=1)
THERMAL_ZONE = Path("/sys/class/thermal/thermal_zone0/temp")


def histogram(values: Iterable[float], edges: tuple[float, ...]) -> dict[str, list[float] | list[int]]:
    """Counts per bucket ``[edges[i], edges[i+1])``, the last bucket closed; values outside are clamped."""
    counts = [0] * (len(edges) - 1)
    for value in values:
        index = 0
        while index < len(counts) - 1 and value >= edges[index + 1]:
            index += 1
        counts[index] += 1
    return {"edges": list(edges), "counts": counts}


def _percentile(sorted_values: list[float], fraction: float) -> float:
    index = min(len(sorted_values) - 1, max(0, round(fraction * (len(sorted_values) - 1))))
    return round(sorted_values[index], 3)


def cpu_temperature_c(zone: Path = THERMAL_ZONE) -> float | None:
    """The SoC temperature on a Pi (millidegrees in sysfs); ``None`` where there is no sensor."""
    try:
        return round(int(zone.read_text().strip()) / 1000.0, 1)
    except (OSError, ValueError):
        return None


def _meminfo() -> dict[str, int]:
    values: dict[str, int] = {}
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            for line in handle:
                name, _, rest = line.partition(":")
                values[name] = int(rest.split()[0]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return values


def system_figures(data_dir: Path) -> dict[str, Any]:
    mem = _meminfo()
    total, available = mem.get("MemTotal"), mem.get("MemAvailable")
    disk = shutil.disk_usage(data_dir)
    return {
        "cpu_temp_c": cpu_temperature_c(),
        "load_1m": round(os.getloadavg()[0], 2),
        "mem_total_mb": None if total is None else round(total / 2**20),
        "mem_available_mb": None if available is None else round(available / 2**20),
        "disk_free_mb": round(disk.free / 2**20),
        "disk_used_pct": round(100.0 * (disk.total - disk.free) / disk.total, 1) if disk.total else None,
        # ru_maxrss is KiB on Linux: the agent's own peak, the figure its 80 MB budget is about.
        "agent_peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


class MetricsReporter:
    def __init__(
        self,
        store: Store,
        topics: Topics,
        *,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.store = store
        self.topics = topics
        self._now = now
        self._started = time.monotonic()

    def _window_start(self, end: datetime) -> datetime:
        stored = self.store.meta.get(WINDOW_META_KEY)
        if stored is not None:
            try:
                start = datetime.fromisoformat(stored)
                if start <= end:
                    return max(start, end - MAX_FIRST_WINDOW)
            except ValueError:
                pass
        return end - MAX_FIRST_WINDOW

    def metrics(self, end: datetime | None = None) -> dict[str, Any]:
        end = end or self._now()
        start = self._window_start(end)
        finished = self.store.transactions.finished_between(start, end)
        outbox = self.store.outbox.activity(start, end)
        live = [t for t in finished if not t["training"]]
        decisions = Counter(str(t["decision"]) for t in live)
        reasons = Counter(r for t in live for r in t["reasons"])
        stages: dict[str, list[float]] = {}
        for txn in live:
            for stage, ms in txn["stage_ms"].items():
                stages.setdefault(stage, []).append(float(ms))
        scores = [float(t["face_score"]) for t in live if t["face_score"] is not None]
        oldest = outbox["oldest_pending"]
        return {
            "schema": METRICS_SCHEMA,
            "window_start": to_iso(start),
            "window_end": to_iso(end),
            "counters": {
                "transactions": len(live),
                "training_transactions": len(finished) - len(live),
                "decisions": dict(sorted(decisions.items())),
                "reasons": dict(sorted(reasons.items())),
                "failures_to_acquire": {k: reasons.get(v, 0) for k, v in FAILURE_TO_ACQUIRE.items()},
                "events": dict(sorted(outbox["events"].items())),
            },
            "histograms": {
                "face_score": histogram(scores, SCORE_EDGES),
                "stage_ms": {
                    stage: {
                        **histogram(values, STAGE_EDGES_MS),
                        "p50": _percentile(sorted(values), 0.5),
                        "p95": _percentile(sorted(values), 0.95),
                    }
                    for stage, values in sorted(stages.items())
                },
            },
            "system": {
                **system_figures(self.store.path.parent),
                "agent_uptime_s": round(time.monotonic() - self._started, 1),
            },
            "outbox": {
                "backlog": outbox["backlog"],
                "oldest_pending_age_s": None
                if oldest is None
                else round(max(0.0, (end - oldest).total_seconds()), 1),
            },
        }

    def produce(self) -> list[Outgoing]:
        body = self.metrics()
        end = body["window_end"]
        return [
            Outgoing(
                self.topics.metrics,
                json.dumps(body, sort_keys=True).encode(),
                qos=1,
                # The next window starts where this one ended (across agent restarts too), but only once
                # this one is on its way: a window dropped while offline is counted again in the next.
                sent=lambda: self.store.meta.set(WINDOW_META_KEY, end),
            )
        ]
