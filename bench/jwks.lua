-- wrk scenario: GET /.well-known/jwks.json. Every non-200 response is counted.
--
--   wrk -t1 -c32 -d15s --latency -s bench/jwks.lua http://127.0.0.1:8080

local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(here .. "report.lua")

local req

function init(args)
  req = wrk.format("GET", "/.well-known/jwks.json")
end

function request()
  return req
end
