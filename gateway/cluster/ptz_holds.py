"""The cluster's :class:`gateway.ptz.holds.PtzHolds`: holders and locks on Redis, one holder across nodes.

A claim is one Lua script (atomic on the Redis server) with the server's clock, so two nodes' clocks
never disagree about idleness. A holder's key expires ``idle_s`` after their last command.
"""

from __future__ import annotations

import time
from typing import Any

from gateway.ptz.holds import ClaimResult, Holder, PtzLock

__all__ = ["RedisPtzHolds"]

_HOLD = "liandong:ptz:hold:{}"
_LOCK = "liandong:ptz:lock:{}"

# KEYS[1] hold key; ARGV: user id, priority, holder JSON (times filled in here), idle ms.
# Returns {granted, holder JSON now, previous JSON or "", ms left}.
_CLAIM = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local idle = tonumber(ARGV[4])
local cur = redis.call('GET', KEYS[1])
local h = nil
if cur then
  h = cjson.decode(cur)
  if now - h['last'] * 1000 >= idle then h = nil end
end
local me = cjson.decode(ARGV[3])
if h == nil or tostring(h['user_id']) == ARGV[1] or tonumber(ARGV[2]) > tonumber(h['priority']) then
  local previous = ''
  me['since'] = now / 1000
  if h ~= nil then
    if tostring(h['user_id']) == ARGV[1] then me['since'] = h['since'] else previous = cur end
  end
  me['last'] = now / 1000
  local out = cjson.encode(me)
  redis.call('SET', KEYS[1], out, 'PX', idle)
  return {1, out, previous, 0}
end
return {0, cur, '', math.max(0, h['last'] * 1000 + idle - now)}
"""

# KEYS[1] hold key; ARGV[1] user id. Deletes the hold only if that user has it.
_RELEASE = """
local cur = redis.call('GET', KEYS[1])
if cur and tostring(cjson.decode(cur)['user_id']) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return cur
end
return false
"""

_UNLOCK = """
local cur = redis.call('GET', KEYS[1])
if cur and cjson.decode(cur)['incident_id'] == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
"""


def _s(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


class RedisPtzHolds:
    """PTZ holders and incident locks shared by the cluster's nodes."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self._claim = client.register_script(_CLAIM)
        self._release = client.register_script(_RELEASE)
        self._unlock = client.register_script(_UNLOCK)

    async def claim(self, camera_id: str, claimant: Holder, idle_s: float) -> ClaimResult:
        """See :meth:`gateway.ptz.holds.PtzHolds.claim`."""
        granted, now, previous, left_ms = await self._claim(
            keys=[_HOLD.format(camera_id)],
            args=[str(claimant.user_id), str(claimant.priority), claimant.to_json(), str(int(idle_s * 1000))],
        )
        holder = Holder.from_json(_s(now))
        prev = Holder.from_json(_s(previous)) if previous else None
        return ClaimResult(bool(int(granted)), holder, prev, int(left_ms) / 1000)

    async def holder(self, camera_id: str, idle_s: float) -> tuple[Holder, float] | None:
        """See :meth:`gateway.ptz.holds.PtzHolds.holder`."""
        key = _HOLD.format(camera_id)
        pipe = self.client.pipeline(transaction=True)
        pipe.get(key)
        pipe.pttl(key)
        cur, ttl = await pipe.execute()
        if not cur or int(ttl) <= 0:
            return None
        return Holder.from_json(_s(cur)), int(ttl) / 1000

    async def release(self, camera_id: str, user_id: int) -> Holder | None:
        """See :meth:`gateway.ptz.holds.PtzHolds.release`."""
        cur = await self._release(keys=[_HOLD.format(camera_id)], args=[str(user_id)])
        return Holder.from_json(_s(cur)) if cur else None

    async def lock(self, camera_id: str, lock: PtzLock) -> None:
        """See :meth:`gateway.ptz.holds.PtzHolds.lock`."""
        ttl_ms = max(1, int((lock.until - time.time()) * 1000))
        await self.client.set(_LOCK.format(camera_id), lock.to_json(), px=ttl_ms)

    async def unlock(self, camera_id: str, incident_id: str) -> bool:
        """See :meth:`gateway.ptz.holds.PtzHolds.unlock`."""
        return bool(int(await self._unlock(keys=[_LOCK.format(camera_id)], args=[incident_id])))

    async def lock_of(self, camera_id: str) -> PtzLock | None:
        """See :meth:`gateway.ptz.holds.PtzHolds.lock_of`."""
        cur = await self.client.get(_LOCK.format(camera_id))
        return PtzLock.from_json(_s(cur)) if cur else None
