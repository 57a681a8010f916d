-- Shared by the wrk scenario scripts (loaded with dofile): counts responses whose status is not 200
-- and prints one machine-readable line at the end, which bench/run.sh parses.
--
-- wrk gives every thread its own Lua state, so the per-thread counters are summed in `done` through
-- the thread handles collected in `setup`.

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

-- Per-thread state (each thread's Lua state runs `init`; the globals live there).
non200 = 0
first_bad = nil

function response(status, headers, body)
  if status ~= 200 then
    non200 = non200 + 1
    if first_bad == nil then
      first_bad = tostring(status) .. " " .. string.sub(tostring(body or ""), 1, 300)
    end
  end
end

function done(summary, latency, requests)
  local bad, sample = 0, nil
  for _, t in ipairs(threads) do
    bad = bad + (t:get("non200") or 0)
    sample = sample or t:get("first_bad")
  end
  local e = summary.errors
  local secs = summary.duration / 1e6
  io.write(string.format(
    "BENCH requests=%d duration_s=%.3f rps=%.1f p50_ms=%.3f p90_ms=%.3f p99_ms=%.3f max_ms=%.3f "
      .. "non200=%d connect_err=%d read_err=%d write_err=%d timeout_err=%d status_err=%d\n",
    summary.requests, secs, summary.requests / secs,
    latency:percentile(50) / 1000, latency:percentile(90) / 1000, latency:percentile(99) / 1000,
    latency.max / 1000,
    bad, e.connect, e.read, e.write, e.timeout, e.status))
  if sample then
    io.write("BENCH_FIRST_BAD " .. string.gsub(sample, "%s+", " ") .. "\n")
  end
end
