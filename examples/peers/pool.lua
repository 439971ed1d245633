-- wrk script of the side-by-side benchmark (examples/peers.rs): checkouts and
-- releases, about 1:1.
--
--   wrk -t1 -c32 -d5s -s pool.lua http://127.0.0.1:PORT -- [API_KEY|-]
--
-- A checkout is `GET /keys`. Every 2xx checkout answer's key_id and lease_id
-- go to a FIFO queue, and the next request any connection sends is the
-- release of the oldest of them, `PUT /keys/{key_id}?lease_id=...`; with the
-- queue empty the next request is a checkout. So each key checked out is
-- released exactly once, and a connection that just got a checkout answer
-- usually sends its release next. wrk's Lua gives no connection id, hence one
-- queue per wrk thread instead of one per connection.
--
-- wrk counts only status > 399 as errors; this script counts every answer
-- that is not 2xx, by kind and status, and `done` prints one line
--   PEERS ok=... bad=... checkouts=... releases=... ...
-- that examples/peers/wrk.rs reads. Only `ok` answers count as throughput.

local threads = {}

function setup(thread)
   table.insert(threads, thread)
end

local headers = {}
local checkout_request
-- A release request is put_head .. "/keys/" .. id .. "?lease_id=" .. lease ..
-- put_tail: wrk.format's output for that path, cut once at the path, so that
-- each release costs one concatenation rather than a wrk.format.
local put_head, put_tail
local queue, head, tail = {}, 1, 0
-- What `done` reads from each thread (globals, so that thread:get sees them).
ok, bad, checkouts, releases, bad_status, first_bad = 0, 0, 0, 0, {}, ""

function init(args)
   local key = args[1]
   if key ~= nil and key ~= "" and key ~= "-" then
      headers["X-API-Key"] = key
   end
   checkout_request = wrk.format("GET", "/keys", headers)
   local template = wrk.format("PUT", "/PATH", headers)
   local at = string.find(template, "/PATH", 1, true)
   put_head = string.sub(template, 1, at - 1)
   put_tail = string.sub(template, at + 5)
end

-- The string value of "name":"..." in a compact JSON body (keypool writes no
-- spaces), found without patterns; nil when absent.
local function field(body, name)
   local _, e = string.find(body, name, 1, true)
   if e == nil then
      return nil
   end
   local close = string.find(body, '"', e + 1, true)
   if close == nil then
      return nil
   end
   return string.sub(body, e + 1, close - 1)
end

function request()
   if head <= tail then
      local path = queue[head]
      queue[head] = nil
      head = head + 1
      releases = releases + 1
      return put_head .. path .. put_tail
   end
   checkouts = checkouts + 1
   return checkout_request
end

function response(status, _, body)
   if status >= 200 and status < 300 then
      ok = ok + 1
      local lease = field(body, '"lease_id":"')
      if lease ~= nil then
         local id = field(body, '"key_id":"')
         if id ~= nil then
            tail = tail + 1
            queue[tail] = "/keys/" .. id .. "?lease_id=" .. lease
         end
      end
   else
      bad = bad + 1
      local s = tostring(status)
      bad_status[s] = (bad_status[s] or 0) + 1
      if first_bad == "" then
         first_bad = s .. " " .. string.sub(body or "", 1, 120)
      end
   end
end

function done(summary, latency, _)
   local t = { ok = 0, bad = 0, checkouts = 0, releases = 0 }
   local statuses, first = {}, ""
   for _, thread in ipairs(threads) do
      for k, _ in pairs(t) do
         t[k] = t[k] + thread:get(k)
      end
      for s, n in pairs(thread:get("bad_status")) do
         statuses[s] = (statuses[s] or 0) + n
      end
      if first == "" then
         first = thread:get("first_bad")
      end
   end
   local by_status = {}
   for s, n in pairs(statuses) do
      table.insert(by_status, s .. ":" .. n)
   end
   local e = summary.errors
   io.write(string.format(
      "PEERS ok=%d bad=%d checkouts=%d releases=%d requests=%d duration_us=%d " ..
      "p50_us=%d p99_us=%d max_us=%d mean_us=%.1f socket_errors=%d timeouts=%d " ..
      "bad_status=%s first_bad=%s\n",
      t.ok, t.bad, t.checkouts, t.releases, summary.requests, summary.duration,
      latency:percentile(50), latency:percentile(99), latency.max, latency.mean,
      e.connect + e.read + e.write, e.timeout,
      table.concat(by_status, ","), (string.gsub(first, "%s", "_"))))
end
