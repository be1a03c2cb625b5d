-- S2.9 load: every connection is a user who thinks between requests. The mix:
-- 90 % session checks, 5 % logins, 5 % other calls (list sessions, forward-auth,
-- CSRF token). Arguments: the accounts file (email<TAB>cookie per line) and the mean
-- think time in milliseconds. Prints p50/p95/p99, and answers by status.
local accounts = {}
local think = 1000
answers = {} -- global: done() reads it from every thread
local threads = {}
local counter = 0

function setup(thread)
  counter = counter + 1
  thread:set("seed", counter)
  table.insert(threads, thread)
end

function init(args)
  for line in io.lines(args[1]) do
    local email, cookie = line:match("^(%S+)\t(.+)$")
    if email then table.insert(accounts, { email = email, cookie = cookie }) end
  end
  think = tonumber(args[2]) or 1000
  math.randomseed(os.time() * 1000 + seed)
end

local password = "correct horse battery staple 42"

function request()
  local a = accounts[math.random(#accounts)]
  local r = math.random(100)
  if r <= 90 then
    return wrk.format("GET", "/api/v1/session", { ["Cookie"] = a.cookie })
  elseif r <= 95 then
    return wrk.format("POST", "/api/v1/login", { ["Content-Type"] = "application/json" },
      '{"email":"' .. a.email .. '","password":"' .. password .. '"}')
  else
    local paths = { "/api/v1/sessions", "/api/v1/forward-auth", "/api/v1/csrf" }
    return wrk.format("GET", paths[math.random(#paths)], { ["Cookie"] = a.cookie })
  end
end

-- Think time, uniform between half and one and a half times the mean.
function delay()
  return math.floor(think / 2 + math.random() * think)
end

function response(status, headers, body)
  answers[status] = (answers[status] or 0) + 1
end

function done(summary, latency, requests)
  local by_status = {}
  for _, t in ipairs(threads) do
    for status, n in pairs(t:get("answers")) do
      by_status[status] = (by_status[status] or 0) + n
    end
  end
  local total, failed = 0, 0
  local parts = {}
  for status, n in pairs(by_status) do
    total = total + n
    if status < 200 or status > 299 then failed = failed + n end
    table.insert(parts, status .. "=" .. n)
  end
  table.sort(parts)
  local e = summary.errors
  local socket = e.connect + e.read + e.write + e.timeout
  io.write(string.format("RESULT %.3f %.3f %.3f %.3f %d %d %d %s\n",
    latency:percentile(50) / 1000, latency:percentile(95) / 1000,
    latency:percentile(99) / 1000, latency.max / 1000,
    total, failed, socket, table.concat(parts, ",")))
end
