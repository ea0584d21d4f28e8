-- wrk script for bench.webhook: rotates through pre-built AdmissionReview requests, so every
-- connection sends the whole mix, and prints one machine-readable summary line at the end.
-- Usage: wrk -s bench/rotate.lua URL -- MANIFEST   (MANIFEST lines: "<path>\t<body file>")

local requests = {}
local index = 0

function init(args)
   local manifest = assert(io.open(args[1], "r"))
   for line in manifest:lines() do
      local path, file = line:match("^(%S+)\t(.+)$")
      local f = assert(io.open(file, "rb"))
      local body = f:read("*a")
      f:close()
      requests[#requests + 1] = wrk.format("POST", path, { ["Content-Type"] = "application/json" }, body)
   end
   manifest:close()
end

function request()
   index = index % #requests + 1
   return requests[index]
end

function done(summary, latency, _)
   local e = summary.errors
   io.write(string.format(
      'WRK_JSON {"requests":%d,"duration_us":%d,"p50_us":%.0f,"p99_us":%.0f,"max_us":%.0f,' ..
      '"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d}\n',
      summary.requests, summary.duration, latency:percentile(50), latency:percentile(99), latency.max,
      e.connect, e.read, e.write, e.status, e.timeout))
end
