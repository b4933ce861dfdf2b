-- fuzz_http's app: every part of the request goes into the response, so
-- that the whole request table is built and read; some paths stream, some
-- answer with statuses and headers the app chose, one raises; one keeps its
-- request to read it later.
local luaserv = require "luaserv"

local web = luaserv.listen("http://127.0.0.1:1", {
    name = "web",
    maxHeaderSize = 2048,
    maxBodySize = 4096,
})

-- /keep keeps its req unread; the next request reads it, after the
-- connection's buffer has moved on (headers and query are built late).
local kept

function web.onMessage(conn, req)
    if kept then
        for _, v in pairs(kept) do assert(v ~= nil) end
        kept = nil
    end
    if req.path == "/keep" then
        kept = req
        return conn:send("kept")
    end
    local parts = { req.method, req.url, req.path, req.version, #req.body }
    for k, v in pairs(req.query) do
        parts[#parts + 1] = tostring(k) .. "=" ..
            (type(v) == "table" and table.concat(v, ",") or tostring(v))
    end
    for k, v in pairs(req.headers) do
        parts[#parts + 1] = k .. ":" ..
            (type(v) == "table" and table.concat(v, "|") or v)
    end
    local body = table.concat(parts, "\n")
    local p = req.path
    if p == "/stream" then
        conn:send{ stream = true, body = "a" }
        conn:send(body)
        conn:send{ done = true, body = "z" }
    elseif p == "/status" then
        conn:send{ status = tonumber(req.query.code) or 204,
                   headers = { ["X-Q"] = req.query.h or "x",
                               Connection = req.query.c },
                   body = body }
    elseif p == "/raw" then
        conn:send("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", true)
        conn:send("ok")
    elseif p == "/error" then
        error("fuzz: handler error")
    elseif p == "/close" then
        conn:send("bye")
        conn:close()
    else
        conn:send(body)
    end
end

function web.onError() end
