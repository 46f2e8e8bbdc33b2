-- Every line of a file is one request, sent exactly once (no repeats, no fillers).
-- Line: METHOD <tab> PATH <tab> TOKEN <tab> BODY (BODY may be empty).
-- Arguments after the URL: <requests file> <threads> <output dir>.
-- Thread i sends lines i, i+threads, ...; a connection waits (delay) once its thread has
-- handed out all its lines. When a thread has every answer it writes done-<i> and stops;
-- the runner then interrupts wrk, whose done() writes result.json.
local ffi = require("ffi")
ffi.cdef [[
typedef struct { long tv_sec; long tv_usec; } bench_timeval;
int gettimeofday(bench_timeval *tv, void *tz);
]]
local tv = ffi.new("bench_timeval")
local function now_us()
  ffi.C.gettimeofday(tv, nil)
  return tonumber(tv.tv_sec) * 1000000 + tonumber(tv.tv_usec)
end

local threads = {}
local next_id = 0

function setup(thread)
  thread:set("id", next_id)
  next_id = next_id + 1
  table.insert(threads, thread)
end

local function mark_done()
  local f = io.open(out_dir .. "/done-" .. id, "w")
  f:write(tostring(answered))
  f:close()
end

function init(args)
  local file, nthreads = args[1], tonumber(args[2])
  out_dir = args[3]
  reqs = {}
  local i = 0
  for line in io.lines(file) do
    if i % nthreads == id then
      local method, path, token, body = line:match("^(%u+)\t([^\t]*)\t([^\t]*)\t(.*)$")
      local headers = { ["Authorization"] = "Bearer " .. token }
      if body == "" then
        body = nil
      else
        headers["Content-Type"] = "application/json"
      end
      reqs[#reqs + 1] = wrk.format(method, path, headers, body)
    end
    i = i + 1
  end
  total, reserved, issued, answered, ok, failed = #reqs, 0, 0, 0, 0, 0
  first_us, last_us, samples = 0, 0, 0
  if total == 0 then mark_done() end
end

function delay()
  if reserved < total then
    reserved = reserved + 1
    return 0
  end
  return 3600000
end

function request()
  if issued >= reserved then
    return reqs[1] -- wrk parses one request at start to check the script: not sent
  end
  issued = issued + 1
  if first_us == 0 then first_us = now_us() end
  return reqs[issued]
end

function response(status, headers, body)
  answered = answered + 1
  if status < 400 then
    ok = ok + 1
  else
    failed = failed + 1
    if samples < 5 then
      samples = samples + 1
      local f = io.open(out_dir .. "/errors-" .. id, "a")
      f:write(status .. " " .. body:sub(1, 300) .. "\n")
      f:close()
    end
  end
  if answered == total then
    last_us = now_us()
    mark_done()
    wrk.thread:stop()
  end
end

function done(summary, latency, requests)
  local first, last, oks, fails = math.huge, 0, 0, 0
  for _, t in ipairs(threads) do
    local f, l = t:get("first_us"), t:get("last_us")
    if f > 0 and f < first then first = f end
    if l > last then last = l end
    oks = oks + t:get("ok")
    fails = fails + t:get("failed")
  end
  local dir = threads[1]:get("out_dir")
  local out = io.open(dir .. "/result.json", "w")
  out:write(string.format(
    '{"ok": %d, "failed": %d, "first_us": %d, "last_us": %d, "requests": %d, ' ..
    '"p50_us": %d, "p90_us": %d, "p99_us": %d, "max_us": %d, "mean_us": %f, ' ..
    '"timeouts": %d, "connect_errors": %d, "read_errors": %d, "write_errors": %d}',
    oks, fails, first == math.huge and 0 or first, last, summary.requests,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
    latency.mean, summary.errors.timeout, summary.errors.connect, summary.errors.read,
    summary.errors.write))
  out:close()
end
