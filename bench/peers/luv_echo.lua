-- luv (libuv for Lua 5.4, Debian's lua-luv) line echo (bench peer): one
-- handler call per line; the replies of one read leave in one write.
--   lua5.4 luv_echo.lua PORT
local uv = require "luv"
local port = assert(tonumber(arg[1]), "usage: luv_echo.lua PORT")

local function onMessage(out, line)
  out[#out + 1] = line
  out[#out + 1] = "\n"
end

local server = uv.new_tcp()
assert(server:bind("127.0.0.1", port))
assert(server:listen(4096, function(err)
  if err then return end
  local client = uv.new_tcp()
  if not server:accept(client) then client:close() return end
  client:nodelay(true)
  local tail = ""
  client:read_start(function(rerr, data)
    if rerr or not data then
      client:close()
      return
    end
    if #tail > 0 then data = tail .. data end
    local out, start = {}, 1
    while true do
      local i = data:find("\n", start, true)
      if not i then break end
      local j = i - 1
      if j >= start and data:byte(j) == 13 then j = j - 1 end
      onMessage(out, data:sub(start, j))
      start = i + 1
    end
    tail = data:sub(start)
    if #out > 0 then client:write(out) end
  end)
end))

uv.run()
