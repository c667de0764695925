-- wrk script for bench/snapshot.sh: request /bench/SIZE?k=0..N-1 once each,
-- spread over the threads (thread t takes k = t, t+T, ...), then stop.
--   wrk -t2 -c32 -d3600s -s bench/snapshot-fill.lua URL -- N SIZE T
local next_id = 0

function setup(thread)
  thread:set("id", next_id)
  next_id = next_id + 1
end

function init(args)
  n = tonumber(args[1])
  size = args[2]
  threads = tonumber(args[3])
  k = id
  answered = 0
  -- this thread's share of the keys
  share = math.floor((n - id + threads - 1) / threads)
end

function request()
  local key = k
  k = k + threads
  if key >= n then key = key % n end  -- requests in flight when the share is done: hits
  return wrk.format("GET", "/bench/" .. size .. "?k=" .. key)
end

function response(status, headers, body)
  answered = answered + 1
  if answered >= share then wrk.thread:stop() end
end
