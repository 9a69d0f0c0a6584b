"""A token-bucket rate limiter shared by every worker thread.

Implemented as a virtual schedule (GCRA): each ``acquire()`` reserves the next free slot, one
every ``1/rate`` seconds, letting up to ``burst`` requests go at once after an idle spell. Slots
are reserved, not polled, so late wake-ups do not lower the achieved rate. ``pause(seconds)``
(a 429's Retry-After) holds every worker, including those already waiting for a slot.
"""
from __future__ import annotations

import threading
import time


class Cancelled(Exception):
    """The run is stopping (Ctrl-C); the waiting request is abandoned."""


class RateLimiter:
    """``RateLimiter(rate=20, burst=1)``; ``rate=None`` means unlimited (pauses still apply)."""

    def __init__(self, rate: float | None, burst: int = 1, stop: threading.Event | None = None,
                 clock=time.monotonic):
        if rate is not None and rate <= 0:
            raise ValueError(f"rate must be positive requests per second (or None), got {rate}")
        if burst < 1:
            raise ValueError(f"burst must be at least 1, got {burst}")
        self.rate = rate
        self.burst = burst
        self.stop = stop or threading.Event()
        self._clock = clock
        self._lock = threading.Lock()
        self._next_free = clock()
        self._paused_until = 0.0

    def sleep(self, seconds: float) -> None:
        if seconds > 0 and self.stop.wait(seconds):
            raise Cancelled()
        if self.stop.is_set():
            raise Cancelled()

    def acquire(self) -> None:
        """Block until this thread may send one request; raises `Cancelled` when stopping."""
        while True:
            with self._lock:
                now = self._clock()
                if now < self._paused_until:
                    wait, slot = self._paused_until - now, None
                elif self.rate is None:
                    return
                else:
                    interval = 1.0 / self.rate
                    slot = max(self._next_free, now - (self.burst - 1) * interval)
                    self._next_free = slot + interval
                    wait = slot - now
            self.sleep(wait)
            if slot is None:
                continue
            with self._lock:
                if self._paused_until <= slot:
                    return
            # a pause began while this thread waited for its slot: queue again after it

    def pause(self, seconds: float) -> None:
        """Hold everyone for ``seconds`` (a server's Retry-After); the schedule restarts after."""
        with self._lock:
            until = self._clock() + max(0.0, seconds)
            if until > self._paused_until:
                self._paused_until = until
                self._next_free = max(self._next_free, until)
