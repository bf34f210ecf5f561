-- Shared by the benchmark's wrk scripts: status counting and a summary printed as one JSON
-- line ("BENCH_JSON {...}") for bench/suite.py.
local M = {}

local threads = {}

-- The comma-separated paths of an environment variable, as a list.
function M.paths(variable)
   local paths = {}
   for p in string.gmatch(os.getenv(variable), "[^,]+") do
      table.insert(paths, p)
   end
   return paths
end

function M.setup(thread)
   thread:set("tid", #threads + 1)
   table.insert(threads, thread)
end

-- Per connection thread: its status counts and how many requests it has made.
function M.init()
   statuses = {}
   sent = 0
end

function M.response(status)
   statuses[status] = (statuses[status] or 0) + 1
end

function M.done(summary, latency)
   local merged = {}
   for _, thread in ipairs(threads) do
      for status, count in pairs(thread:get("statuses")) do
         merged[status] = (merged[status] or 0) + count
      end
   end
   local parts = {}
   for status, count in pairs(merged) do
      table.insert(parts, string.format('"%d":%d', status, count))
   end
   local errors = summary.errors
   io.write(string.format(
      'BENCH_JSON {"requests":%d,"duration_us":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d,'
         .. '"mean_us":%.1f,"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},'
         .. '"statuses":{%s}}\n',
      summary.requests, summary.duration, latency:percentile(50), latency:percentile(90),
      latency:percentile(99), latency.max, latency.mean, errors.connect, errors.read, errors.write,
      errors.status, errors.timeout, table.concat(parts, ",")))
end

return M
