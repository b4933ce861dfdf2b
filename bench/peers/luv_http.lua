-- luv (libuv for Lua 5.4) HTTP/1.1 hello world (bench peer): a minimal
-- hand-written responder with keep-alive, pipelining (answers in order, one
-- write per read), Connection: close and HTTP/1.0. GET-style requests only
-- (a Content-Length body is skipped; no chunked bodies).
--   lua5.4 luv_http.lua PORT
local uv = require "luv"
local port = assert(tonumber(arg[1]), "usage: luv_http.lua PORT")

local date, date_at = "", -1
local function http_date()
  local t = os.time()
  if t ~= date_at then
    date = os.date("!%a, %d %b %Y %H:%M:%S GMT", t)
    date_at = t
  end
  return date
end

local function onRequest(head)
  return "hello"
end

local server = uv.new_tcp()
assert(server:bind("127.0.0.1", port))
assert(server:listen(4096, function(err)
  if err then return end
  local client = uv.new_tcp()
  if not server:accept(client) then client:close() return end
  client:nodelay(true)
  local buf = ""
  client:read_start(function(rerr, data)
    if rerr or not data then
      client:close()
      return
    end
    buf = buf .. data
    local out, start, close_after = {}, 1, false
    while true do
      local e = buf:find("\r\n\r\n", start, true)
      if not e then break end
      local head = buf:sub(start, e + 1)
      local body_len = tonumber(head:match("\r\n[Cc]ontent%-[Ll]ength:%s*(%d+)")) or 0
      if #buf < e + 3 + body_len then break end
      local lower = head:lower()
      local v10 = head:match("^[^\r\n]* HTTP/1%.0\r\n") ~= nil
      local conn = lower:match("\r\nconnection:%s*([^\r]*)")
      if conn and conn:find("close", 1, true) then
        close_after = true
      elseif v10 and not (conn and conn:find("keep-alive", 1, true)) then
        close_after = true
      end
      local body = onRequest(head)
      out[#out + 1] = "HTTP/1.1 200 OK\r\nServer: luv\r\nDate: " .. http_date() ..
        "\r\nContent-Type: text/plain\r\nContent-Length: " .. #body .. "\r\n" ..
        (close_after and "Connection: close\r\n" or
         (v10 and "Connection: keep-alive\r\n" or "")) .. "\r\n" .. body
      start = e + 4 + body_len
      if close_after then break end
    end
    buf = buf:sub(start)
    if #out > 0 then client:write(out) end
    if close_after then
      client:read_stop()
      client:shutdown(function() client:close() end)
    end
  end)
end))

uv.run()
