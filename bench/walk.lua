-- wrk script: every request a distinct URL, PATH?KEY=PREFIX-1, PATH?KEY=PREFIX-2, ...
--
--   wrk -t1 -c50 -d60s -s bench/walk.lua http://127.0.0.1:PORT/ PATH KEY PREFIX COUNT [AFTER MARGIN]
--
-- COUNT = 0: no end; wrk's -d bounds the run (the "miss" case: a new URL per
--   request, so every request is a miss).
-- COUNT > 0: walk PREFIX-1 .. PREFIX-COUNT once each (a fill, or a second pass
--   over the same objects), then request AFTER (a URL already stored, so a
--   hit) until COUNT + MARGIN responses have arrived, and stop wrk early. The
--   margin (a few times the connection count) lets the last walked requests,
--   answered on other connections, finish before wrk closes its connections;
--   -d still bounds the run if the server is slower than expected.
--
-- Early stop: wrk's main thread sleeps for the whole -d and stops on SIGINT;
-- os.execute() ignores SIGINT while its shell runs, so the signal is sent from
-- a background shell a moment later ($PPID of that shell is wrk).
local path, key, prefix, count, after, margin
-- wrk calls request() once on thread 0's state right after init() and
-- discards the result (script_verify_request: it counts pipelined requests),
-- so counting starts at -1: that call takes PREFIX-0 and the walk proper
-- starts at PREFIX-1. run.sh always runs wrk -t1.
local issued, answered = -1, 0

function init(args)
  path, key, prefix = args[1], args[2], args[3]
  count = tonumber(args[4]) or 0
  after = args[5] or path
  margin = tonumber(args[6]) or 0
  if count > 0 then
    -- Defined only for walks with an end: wrk parses responses for Lua only
    -- when a response() function exists.
    response = function()
      answered = answered + 1
      if answered == count + margin then
        wrk.thread:stop()
        os.execute("(sleep 0.1; kill -INT $PPID) &")
      end
    end
  end
end

function request()
  issued = issued + 1
  if count == 0 or issued <= count then
    return wrk.format("GET", path .. "?" .. key .. "=" .. prefix .. "-" .. issued)
  end
  return wrk.format("GET", after)
end
