-- Sends to the chats in BENCH_PATHS (comma-separated send URLs) as BENCH_TOKEN.
-- BENCH_MODE=fresh: every request has a key of its own (a first send);
-- BENCH_MODE=replay: each connection repeats BENCH_REPLAY_KEYS keys, which a warm-up run with
-- the same BENCH_RUN has already delivered, so every request is an idempotent replay.
-- BENCH_TEXT_BYTES: pad each text to this many characters (default: a short text).
package.path = os.getenv("BENCH_WRK_DIR") .. "/?.lua;" .. package.path
local common = require("common")

local token = os.getenv("BENCH_TOKEN")
local run = os.getenv("BENCH_RUN")
local mode = os.getenv("BENCH_MODE") or "fresh"
local replay_keys = tonumber(os.getenv("BENCH_REPLAY_KEYS") or "4")
local paths = common.paths("BENCH_PATHS")
local text_bytes = tonumber(os.getenv("BENCH_TEXT_BYTES") or "0")

setup = common.setup
init = common.init

function request()
   sent = sent + 1
   local n = sent
   if mode == "replay" then
      n = sent % replay_keys
   end
   local key = string.format("%s-%d-%d", run, tid, n)
   local path = paths[(tid + n) % #paths + 1]
   local text = "benchmark message " .. key
   if #text < text_bytes then
      text = text .. " " .. string.rep("x", text_bytes - #text - 1)
   end
   local body = string.format('{"text":"%s"}', text)
   return wrk.format("POST", path, {
      ["Authorization"] = "Bearer " .. token,
      ["Content-Type"] = "application/json",
      ["Idempotency-Key"] = key,
   }, body)
end

response = common.response
done = common.done
