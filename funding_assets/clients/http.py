"""HTTP for the venue clients: a client-side rate limiter and a retrying JSON client.

Every request waits for its venue's budget (a token bucket per bucket the venue publishes:
:attr:`~funding_assets.venues.spec.VenueSpec.budgets`), has a timeout, and is retried only
when it is idempotent: on a timeout or dropped connection, on 429/418/403 and 5xx
(honouring ``Retry-After``, and pausing the bucket so the client stops hammering), and on a
malformed body. Back-off is exponential with full jitter. A 4xx that is not a limit is a
:class:`VenueError` at once, naming the venue, path and status. A host that cannot be
connected to at all (name not resolved, connection refused, connect timeout) is given only
``connect_attempts`` tries, then :class:`VenueUnreachable`: no answer is coming, so the
full retry budget would only delay the error.
"""

import random
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import httpx
import orjson

from ..venues.spec import Budget

__all__ = ["LIMIT_STATUSES", "Budget", "HttpClient", "RateLimiter", "VenueError", "VenueUnreachable"]

LIMIT_STATUSES = (429, 418, 403)
#: Share of a bucket's burst the client never spends. The venue counts a request when it
#: arrives, the client when it leaves: a request that travels faster than the one before
#: it arrives early, and with both buckets spent the venue would refuse it. The reserve
#: absorbs latency swings of up to this share of the bucket's period (0.5 s of Bybit's 5 s,
#: 6 s of Binance's minute) and costs that much time once, not a share of every request.
RESERVE_SHARE = 0.1
#: A wait shorter than this is no wait: rounding must not leave a caller sleeping for ever on
#: a shortfall of one part in 10^16 (a clock that moves only by the sleeps).
GRANULE_S = 1e-9


class VenueError(RuntimeError):
    """A venue answered with an error we cannot retry past (names venue, path and reason)."""


class VenueUnreachable(VenueError):
    """No connection to a venue's host could be made (names the venue and ``host:port``)."""

    def __init__(self, venue: str, host: str, message: str) -> None:
        super().__init__(message)
        self.venue = venue
        self.host = host


class RateLimiter:
    """Thread-safe token bucket of one budget; ``pause`` blocks everyone until a venue's
    cool-off ends.

    It holds at most ``(1 - reserve_share)`` of the budget's burst (see
    :data:`RESERVE_SHARE`), starts full and refills at the budget's rate. ``spent`` counts
    the units granted (less those refunded), ``waited_s`` the seconds callers slept.
    """

    def __init__(
        self,
        budget: Budget,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        reserve_share: float = RESERVE_SHARE,
    ) -> None:
        self.budget = budget
        self.clock = clock
        self.sleep = sleep
        self.capacity = budget.requests * (1.0 - reserve_share)
        self._tokens = self.capacity
        self._stamp = clock()
        self._paused_until = 0.0
        self._lock = threading.Lock()
        self.waited_s = 0.0
        self.spent = 0.0

    def _refill(self, now: float) -> None:
        self._tokens = min(self.capacity, self._tokens + (now - self._stamp) * self.budget.per_second)
        self._stamp = now

    def acquire(self, cost: float = 1.0) -> None:
        """Wait until ``cost`` units are available and take them (a cost above the bucket's
        size takes a full bucket)."""
        cost = min(cost, self.capacity)
        while True:
            with self._lock:
                now = self.clock()
                self._refill(now)
                wait = max(self._paused_until - now, (cost - self._tokens) / self.budget.per_second, 0.0)
                if wait <= GRANULE_S:
                    self._tokens -= cost
                    self.spent += cost
                    return
            self.waited_s += wait
            self.sleep(wait)

    def refund(self, units: float) -> None:
        """Give back units charged beyond what a request turned out to cost (a venue that
        charges by the rows it returns)."""
        if units <= 0:
            return
        with self._lock:
            self._refill(self.clock())
            self._tokens = min(self.capacity, self._tokens + units)
            self.spent -= units

    def pause(self, seconds: float) -> None:
        with self._lock:
            self._paused_until = max(self._paused_until, self.clock() + seconds)


def retry_after_s(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


def page_json(response: httpx.Response) -> Any:
    """The JSON value of a history page, parsed by orjson: the same objects ``response.json()``
    gives for bodies whose integers fit 64 bits (epoch times, counts; orjson reads a longer one
    as a float), which the history pages' are. A body orjson refuses (``NaN``, another
    encoding) is left to ``response.json()``, which also raises for a malformed one."""
    try:
        return orjson.loads(response.content)
    except orjson.JSONDecodeError:
        return response.json()


class HttpClient:
    """JSON over HTTP for one venue base URL, within the venue's budgets.

    ``budget``: the venue's buckets by name (a request names the one it draws on; an
    unknown or no name draws on the first), or one :class:`Budget` every request draws on.
    ``limiter``: one limiter for every request instead (tests pacing on their own clock);
    ``clock`` and ``sleep`` drive the limiters otherwise.
    """

    def __init__(
        self,
        venue: str,
        base_url: str,
        budget: Budget | Mapping[str, Budget],
        *,
        timeout_s: float = 10.0,
        max_attempts: int = 8,
        connect_attempts: int = 3,
        backoff_s: float = 0.25,
        backoff_cap_s: float = 30.0,
        limiter: RateLimiter | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self.venue = venue
        self.base_url = base_url.rstrip("/")
        self.budgets: dict[str, Budget] = {"": budget} if isinstance(budget, Budget) else dict(budget)
        self.limiters: dict[str, RateLimiter] = {
            name: limiter or RateLimiter(b, clock=clock, sleep=sleep) for name, b in self.budgets.items()
        }
        #: The first bucket's limiter (every request's, for a client of one budget).
        self.limiter = next(iter(self.limiters.values()))
        self.max_attempts = max_attempts
        self.connect_attempts = connect_attempts
        self.backoff_s = backoff_s
        self.backoff_cap_s = backoff_cap_s
        self.sleep = sleep
        self.rng = rng or random.Random()
        self.requests = 0
        self.retries = 0
        self._client = httpx.Client(base_url=self.base_url, timeout=timeout_s, headers={"User-Agent": "funding-assets"})

    def close(self) -> None:
        self._client.close()

    def limiter_of(self, bucket: str | None) -> RateLimiter:
        """The limiter a request naming ``bucket`` draws on (the first for None or an unknown name)."""
        return self.limiters.get(bucket, self.limiter) if bucket is not None else self.limiter

    def refund(self, units: float, bucket: str | None = None) -> None:
        """Give back units charged beyond a request's real cost (see :meth:`RateLimiter.refund`)."""
        self.limiter_of(bucket).refund(units)

    def __enter__(self) -> "HttpClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def get(
        self,
        path: str,
        params: dict[str, Any] | None = None,
        *,
        cost: float = 1.0,
        bucket: str | None = None,
        decode: Callable[[httpx.Response], Any] | None = None,
    ) -> Any:
        """GET ``path`` (or an absolute URL), drawing ``cost`` units of ``bucket``; ``decode``
        turns the body into a value (JSON by default); a ``ValueError`` from it counts as a
        malformed body and is retried."""
        return self.request("GET", path, params=params, cost=cost, bucket=bucket, idempotent=True, decode=decode)

    def post(
        self, path: str, body: Any, *, cost: float = 1.0, bucket: str | None = None, idempotent: bool = False
    ) -> Any:
        """POST ``body`` as JSON; retried only if the caller declares it ``idempotent`` (a read)."""
        return self.request("POST", path, json=body, cost=cost, bucket=bucket, idempotent=idempotent)

    def _host(self, exc: httpx.TransportError, path: str) -> str:
        try:
            url = exc.request.url
        except RuntimeError:  # raised before httpx attached the request
            url = self._client.build_request("GET", path).url
        return f"{url.host}:{url.port or (443 if url.scheme == 'https' else 80)}"

    def _backoff(self, attempt: int) -> float:
        return self.rng.uniform(0, min(self.backoff_cap_s, self.backoff_s * 2**attempt))

    def request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        json: Any = None,
        cost: float = 1.0,
        bucket: str | None = None,
        idempotent: bool,
        decode: Callable[[httpx.Response], Any] | None = None,
    ) -> Any:
        where = f"{self.venue} {method} {self.base_url}{path}"
        limiter = self.limiter_of(bucket)
        last = "no attempt"
        refused = 0  # connection attempts that reached no server
        for attempt in range(self.max_attempts):
            if attempt:
                self.retries += 1
            if cost:
                limiter.acquire(cost)
            self.requests += 1
            try:
                response = self._client.request(method, path, params=params, json=json)
            except httpx.UnsupportedProtocol as exc:
                raise VenueError(f"{where}: {exc}") from None
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                # no server reached (no such name, refused): nothing was sent, so even a
                # non-idempotent request may be tried again
                refused += 1
                if refused >= self.connect_attempts:
                    host = self._host(exc, path)
                    raise VenueUnreachable(
                        self.venue,
                        host,
                        f"{self.venue}: cannot reach {host} ({type(exc).__name__}: {exc or 'no detail'}) "
                        f"after {refused} attempt{'s' * (refused > 1)} ({method} {path})",
                    ) from None
                self.sleep(self._backoff(attempt))
                continue
            except httpx.TransportError as exc:  # read timeouts, dropped connections
                last = f"{type(exc).__name__}: {exc}"
                if not idempotent:
                    raise VenueError(f"{where}: {last} (not retried: the request is not idempotent)") from exc
                self.sleep(self._backoff(attempt))
                continue
            status = response.status_code
            if status in LIMIT_STATUSES or status >= 500:
                last = f"HTTP {status} {response.text[:200]!r}"
                if not idempotent:
                    raise VenueError(f"{where}: {last}")
                wait = retry_after_s(response)
                limiter.pause(wait if wait is not None else self._backoff(attempt))
                continue
            if status >= 400:
                raise VenueError(f"{where}: HTTP {status} {response.text[:300]!r}")
            try:
                return decode(response) if decode else response.json()
            except ValueError as exc:
                last = f"malformed body ({exc})"
                if not idempotent:
                    raise VenueError(f"{where}: {last}") from None
                self.sleep(self._backoff(attempt))
        raise VenueError(f"{where}: gave up after {self.max_attempts} attempts; last: {last}")
