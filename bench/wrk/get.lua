-- GETs of the paths in BENCH_PATHS (comma-separated), in turn, as BENCH_TOKEN.
package.path = os.getenv("BENCH_WRK_DIR") .. "/?.lua;" .. package.path
local common = require("common")

local token = os.getenv("BENCH_TOKEN")
local paths = common.paths("BENCH_PATHS")

setup = common.setup
init = common.init

function request()
   sent = sent + 1
   return wrk.format("GET", paths[(tid + sent) % #paths + 1], {["Authorization"] = "Bearer " .. token})
end

response = common.response
done = common.done
