"""HTTP for the venue clients: a client-side rate limiter and a retrying JSON client.

Every request waits for its venue's budget (a token bucket), has a timeout, and is retried
only when it is idempotent: on a timeout or dropped connection, on 429/418/403 and 5xx
(honouring ``Retry-After``, and pausing the whole client so it stops hammering), and on a
malformed body. Back-off is exponential with full jitter. A 4xx that is not a limit is a
:class:`VenueError` at once, naming the venue, path and status. A host that cannot be
connected to at all (name not resolved, connection refused, connect timeout) is given only
``connect_attempts`` tries, then :class:`VenueUnreachable`: no answer is coming, so the
full retry budget would only delay the error.
"""

import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

LIMIT_STATUSES = (429, 418, 403)


class VenueError(RuntimeError):
    """A venue answered with an error we cannot retry past (names venue, path and reason)."""


class VenueUnreachable(VenueError):
    """No connection to a venue's host could be made (names the venue and ``host:port``)."""

    def __init__(self, venue: str, host: str, message: str) -> None:
        super().__init__(message)
        self.venue = venue
        self.host = host


@dataclass(frozen=True)
class Budget:
    """At most ``requests`` request units per ``period_s`` seconds (a venue's published limit)."""

    requests: float
    period_s: float

    @property
    def per_second(self) -> float:
        return self.requests / self.period_s


class RateLimiter:
    """Thread-safe token bucket; ``pause`` blocks everyone until a venue's cool-off ends."""

    def __init__(
        self,
        budget: Budget,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.budget = budget
        self.clock = clock
        self.sleep = sleep
        self._tokens = budget.requests
        self._stamp = clock()
        self._paused_until = 0.0
        self._lock = threading.Lock()
        self.waited_s = 0.0

    def acquire(self, cost: float = 1.0) -> None:
        cost = min(cost, self.budget.requests)
        while True:
            with self._lock:
                now = self.clock()
                self._tokens = min(self.budget.requests, self._tokens + (now - self._stamp) * self.budget.per_second)
                self._stamp = now
                wait = max(self._paused_until - now, (cost - self._tokens) / self.budget.per_second, 0.0)
                if wait <= 0:
                    self._tokens -= cost
                    return
            self.waited_s += wait
            self.sleep(wait)

    def pause(self, seconds: float) -> None:
        with self._lock:
            self._paused_until = max(self._paused_until, self.clock() + seconds)


def retry_after_s(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


class HttpClient:
    """JSON over HTTP for one venue base URL, within the venue's budget."""

    def __init__(
        self,
        venue: str,
        base_url: str,
        budget: Budget,
        *,
        timeout_s: float = 10.0,
        max_attempts: int = 8,
        connect_attempts: int = 3,
        backoff_s: float = 0.25,
        backoff_cap_s: float = 30.0,
        limiter: RateLimiter | None = None,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self.venue = venue
        self.base_url = base_url.rstrip("/")
        self.limiter = limiter or RateLimiter(budget, sleep=sleep)
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
        decode: Callable[[httpx.Response], Any] | None = None,
    ) -> Any:
        """GET ``path`` (or an absolute URL); ``decode`` turns the body into a value (JSON by
        default); a ``ValueError`` from it counts as a malformed body and is retried."""
        return self.request("GET", path, params=params, cost=cost, idempotent=True, decode=decode)

    def post(self, path: str, body: Any, *, cost: float = 1.0, idempotent: bool = False) -> Any:
        """POST ``body`` as JSON; retried only if the caller declares it ``idempotent`` (a read)."""
        return self.request("POST", path, json=body, cost=cost, idempotent=idempotent)

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
        idempotent: bool,
        decode: Callable[[httpx.Response], Any] | None = None,
    ) -> Any:
        where = f"{self.venue} {method} {self.base_url}{path}"
        last = "no attempt"
        refused = 0  # connection attempts that reached no server
        for attempt in range(self.max_attempts):
            if attempt:
                self.retries += 1
            if cost:
                self.limiter.acquire(cost)
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
                self.limiter.pause(wait if wait is not None else self._backoff(attempt))
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
