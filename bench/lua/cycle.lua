-- GET with each cookie of a file in turn (argument: the file), so every session is
-- checked once per pass.
local cookies = {}
local i = 0

function init(args)
  for line in io.lines(args[1]) do table.insert(cookies, line) end
end

function request()
  i = i % #cookies + 1
  return wrk.format("GET", nil, { ["Cookie"] = cookies[i] })
end
