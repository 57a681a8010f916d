-- wrk scenario: POST /token, grant_type=client_credentials, client_secret_basic.
--
--   wrk -t1 -c32 -d15s --latency -s bench/client_credentials.lua http://127.0.0.1:8080 -- CLIENT_ID CLIENT_SECRET
--
-- (CLIENT_ID / CLIENT_SECRET may also come from the environment.) Every non-200 response is counted.

local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(here .. "report.lua")

local b64chars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"

local function base64(s)
  local out = {}
  for i = 1, #s, 3 do
    local a, b, c = string.byte(s, i, i + 2)
    local n = a * 65536 + (b or 0) * 256 + (c or 0)
    local c1 = math.floor(n / 262144) % 64
    local c2 = math.floor(n / 4096) % 64
    local c3 = math.floor(n / 64) % 64
    local c4 = n % 64
    out[#out + 1] = b64chars:sub(c1 + 1, c1 + 1) .. b64chars:sub(c2 + 1, c2 + 1)
      .. (b and b64chars:sub(c3 + 1, c3 + 1) or "=")
      .. (c and b64chars:sub(c4 + 1, c4 + 1) or "=")
  end
  return table.concat(out)
end

-- RFC 6749 §2.3.1: id and secret are form-urlencoded before they are joined and base64-encoded.
local function form_encode(s)
  return (string.gsub(s, "[^%w%-%._~]", function(ch)
    return string.format("%%%02X", string.byte(ch))
  end))
end

local req

function init(args)
  local id = args[1] or os.getenv("CLIENT_ID")
  local secret = args[2] or os.getenv("CLIENT_SECRET")
  if not id or not secret then
    error("usage: wrk ... -s client_credentials.lua URL -- CLIENT_ID CLIENT_SECRET")
  end
  local headers = {
    ["Authorization"] = "Basic " .. base64(form_encode(id) .. ":" .. form_encode(secret)),
    ["Content-Type"] = "application/x-www-form-urlencoded",
  }
  req = wrk.format("POST", "/token", headers, "grant_type=client_credentials")
end

function request()
  return req
end
