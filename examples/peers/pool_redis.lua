-- The Redis peer of the side-by-side benchmark (examples/peers.rs): the key
-- pool a user would build in Redis, as one script so that redis-benchmark can
-- drive checkouts and releases with one command.
--
--   EVALSHA <sha> 3 pool:free pool:leased pool:stats __rand_int__ <lease_ms>
--
-- KEYS[1]: a SET of free key ids; KEYS[2]: a ZSET of leased key ids scored by
-- their lease deadline (ms); KEYS[3]: a HASH counting fallbacks.
-- redis-benchmark -r 2 makes ARGV[1] 0 or 1 at random: 0 checks a key out
-- (SRANDMEMBER, SREM, ZADD with now + lease_ms), 1 releases the leased key
-- whose lease ends first (ZRANGE 0 0, ZREM, SADD); so checkouts and releases
-- are about 1:1. redis-benchmark cannot pass a checkout's answer to a later
-- release, hence "the key whose lease ends first" rather than "the key this
-- client holds". When the chosen branch has nothing to do (no free key, or
-- nothing leased) the script does the other one and counts a fallback, so
-- every call is one real checkout or release. Returns the key id.

local function checkout()
   local k = redis.call('SRANDMEMBER', KEYS[1])
   if not k then
      return false
   end
   redis.call('SREM', KEYS[1], k)
   local t = redis.call('TIME')
   local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
   redis.call('ZADD', KEYS[2], now_ms + tonumber(ARGV[2]), k)
   return k
end

local function release()
   local k = redis.call('ZRANGE', KEYS[2], 0, 0)[1]
   if not k then
      return false
   end
   redis.call('ZREM', KEYS[2], k)
   redis.call('SADD', KEYS[1], k)
   return k
end

local first, second = checkout, release
if tonumber(ARGV[1]) % 2 == 1 then
   first, second = release, checkout
end
local k = first()
if k then
   return k
end
redis.call('HINCRBY', KEYS[3], 'fallbacks', 1)
return second()
