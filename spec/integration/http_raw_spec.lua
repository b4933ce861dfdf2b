-- http:// over raw sockets: pipelining, partial input, malformed and
-- smuggling attempts, limits, the lingering close and graceful stop.
local server = require "helpers.server"
local client = require "helpers.client"

local APP = "spec/fixtures/apps/http_app.lua"

-- Read one response from client c: {status, headers (lower-case names,
-- repeats joined with ", "), body}, or nil, err. head_only for HEAD.
local function response(c, head_only, timeout)
    timeout = timeout or 5
    local line, err = c:line(timeout)
    if not line then return nil, err end
    local status = tonumber(line:match("^HTTP/1%.1 (%d%d%d) .*\r$"))
    if not status then return nil, "bad status line: " .. line end
    local r = { status = status, headers = {}, line = line }
    while true do
        local l = c:line(timeout)
        if not l then return nil, "closed in the head" end
        l = l:gsub("\r$", "")
        if l == "" then break end
        local k, v = l:match("^([%w%-]+): (.*)$")
        if not k then return nil, "bad header line: " .. l end
        k = k:lower()
        r.headers[k] = r.headers[k] and r.headers[k] .. ", " .. v or v
    end
    local h = r.headers
    if head_only or status == 204 or status == 304 or status < 200 then
        r.body = ""
    elseif h["content-length"] then
        r.body = assert(c:bytes(tonumber(h["content-length"]), timeout))
    elseif h["transfer-encoding"] == "chunked" then
        local parts = {}
        while true do
            local size = tonumber(assert(c:line(timeout)):match("^(%x+)\r$"),
                                  16)
            if size == 0 then
                assert.are.equal("\r", c:line(timeout))
                break
            end
            parts[#parts + 1] = assert(c:bytes(size, timeout))
            assert.are.equal("\r", c:line(timeout))
        end
        r.body = table.concat(parts)
    else
        c:wait_closed(timeout)
        r.body = c.buf
        c.buf = ""
    end
    return r
end

local function get(path, extra)
    return "GET " .. path .. " HTTP/1.1\r\nHost: t\r\n" .. (extra or "") ..
           "\r\n"
end

describe("http:// raw", function()
    local srv
    setup(function()
        srv = server.start(APP)
    end)
    teardown(function()
        if srv then srv:stop() end
    end)

    local function connect()
        local c = client.must_connect(srv.port)
        finally(function() c:close() end)
        return c
    end

    describe("pipelining", function()
        it("answers pipelined requests in order, in one write", function()
            local c = connect()
            assert(c:send(get("/echo?n=1") ..
                "POST /size HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\n" ..
                "abcde" .. get("/") ..
                "POST /size HTTP/1.1\r\nHost: t\r\n" ..
                "Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n" ..
                get("/status?code=404&body=x")))
            local r1 = assert(response(c))
            assert.are.equal(200, r1.status)
            assert.truthy(r1.body:find("q:n=1", 1, true))
            assert.are.equal("5", assert(response(c)).body)
            assert.are.equal("hello", assert(response(c)).body)
            assert.are.equal("3", assert(response(c)).body)
            local r5 = assert(response(c))
            assert.are.equal(404, r5.status)
            assert.are.equal("x", r5.body)
            assert.are.equal("", c:drain(0.1))
        end)

        it("keeps request order when answers come later, from timers",
        function()
            local c = connect()
            assert(c:send(get("/later?ms=200&id=1") .. get("/later?ms=10&id=2")
                          .. get("/") .. get("/stream?n=2")
                          .. get("/later?ms=1&id=5")))
            assert.are.equal("later 1", assert(response(c)).body)
            assert.are.equal("later 2", assert(response(c)).body)
            assert.are.equal("hello", assert(response(c)).body)
            assert.are.equal("first;part1;part2;last",
                             assert(response(c)).body)
            assert.are.equal("later 5", assert(response(c)).body)
        end)

        it("does not answer a second time: conn:send with no request raises",
        function()
            local c = connect()
            assert(c:send(get("/twice") .. get("/")))
            assert.are.equal("one", assert(response(c)).body)
            assert.are.equal("hello", assert(response(c)).body)
            assert.truthy(srv:wait_log("second send: false no HTTP request " ..
                                       "is waiting", 5))
        end)

        it("honours pauseRecv() in onMessage", function()
            local c = connect()
            assert(c:send(get("/pause") .. get("/")))
            assert.are.equal("paused", assert(response(c)).body)
            assert.are.equal("hello", assert(response(c)).body)
        end)

        it("serves an Upgrade request as an ordinary one and goes on",
        function()
            local c = connect()
            assert(c:send(get("/echo?u=1", "Connection: Upgrade\r\n" ..
                                           "Upgrade: websocket\r\n") ..
                          get("/")))
            local r = assert(response(c))
            assert.truthy(r.body:find("h:upgrade=websocket", 1, true))
            assert.are.equal("hello", assert(response(c)).body)
        end)

        it("closes after a request with Connection: close, ignoring what " ..
           "follows", function()
            local c = connect()
            assert(c:send(get("/echo?id=closing", "Connection: close\r\n") ..
                          get("/echo?id=after-close")))
            local r = assert(response(c))
            assert.are.equal("close", r.headers.connection)
            assert(c:wait_closed(5))
            assert.are.equal("", c.buf)
            assert.are.equal(0, srv:count_log("request GET /echo%?id=after"))
        end)

        it("closes after a response with Connection: close from the app",
        function()
            local c = connect()
            assert(c:send(get("/close") .. get("/")))
            local r = assert(response(c))
            assert.are.equal("bye", r.body)
            assert.are.equal("close", r.headers.connection)
            assert(c:wait_closed(5))
        end)
    end)

    describe("partial input", function()
        it("parses a request sent one byte at a time", function()
            local c = connect()
            local req = "POST /echo?a=%41+b HTTP/1.1\r\nHost: t\r\n" ..
                "X-Long-Header: " .. string.rep("v", 40) .. "\r\n" ..
                "Transfer-Encoding: chunked\r\n" ..
                "X-Empty-Last:\r\n\r\n" ..   -- a split name, no value
                "4\r\nabcd\r\n1;ext=1\r\ne\r\n0\r\nX-Trailer: t\r\n\r\n"
            for i = 1, #req do
                assert(c:send(req:sub(i, i)))
                if i % 8 == 0 then client.sleep(0.001) end
            end
            local r = assert(response(c))
            assert.are.equal(200, r.status)
            assert.truthy(r.body:find("body=abcde\n", 1, true))
            assert.truthy(r.body:find("q:a=A b\n", 1, true))
            assert.truthy(r.body:find("h:x-long-header=" ..
                                      string.rep("v", 40), 1, true))
            assert.truthy(r.body:find("h:x-empty-last=\n", 1, true))
            assert.falsy(r.body:find("x-trailer", 1, true))
        end)

        it("takes a large Content-Length body arriving in pieces", function()
            local c = connect()
            local body = string.rep("0123456789abcdef", 4000)   -- 64000
            assert(c:send("POST /size HTTP/1.1\r\nHost: t\r\n" ..
                          "Content-Length: " .. #body .. "\r\n\r\n"))
            for i = 1, #body, 1000 do
                assert(c:send(body:sub(i, i + 999)))
            end
            assert.are.equal(tostring(#body), assert(response(c)).body)
        end)
    end)

    describe("responses", function()
        it("joins repeated request headers; cookie with '; '", function()
            local c = connect()
            assert(c:send(get("/echo", "X-A: 1\r\nx-a: 2\r\nCookie: a=1\r\n" ..
                                       "Cookie: b=2\r\nSet-Cookie: s=1\r\n" ..
                                       "X-Space:   padded  \r\nX-Empty:\r\n")))
            local body = assert(response(c)).body
            assert.truthy(body:find("h:x-a=1, 2\n", 1, true))
            assert.truthy(body:find("h:cookie=a=1; b=2\n", 1, true))
            assert.truthy(body:find("h:set-cookie=[s=1]\n", 1, true))
            assert.truthy(body:find("h:x-space=padded\n", 1, true))
            assert.truthy(body:find("h:x-empty=\n", 1, true))
        end)

        it("builds req.headers and req.query on first use, from a copy " ..
           "that outlives the request", function()
            local c = connect()
            assert(c:send(get("/keep?x=%41%2541&y", "X-Kept: one\r\n") ..
                          get("/echo?x=other", "X-Kept: two\r\nX-B: 2\r\n")))
            assert.are.equal("kept", assert(response(c)).body)
            assert.truthy(assert(response(c)).body:find("h:x-kept=two\n", 1,
                                                        true))
            assert(c:send(get("/kept")))
            local body = assert(response(c)).body
            assert.truthy(body:find("url=/keep?x=%41%2541&y\n", 1, true))
            assert.truthy(body:find("q:x=A%41\n", 1, true))
            assert.truthy(body:find("q:y=true\n", 1, true))
            assert.truthy(body:find("h:x-kept=one\n", 1, true))
            assert.truthy(body:find("h:host=t\n", 1, true))
            assert.is_nil(body:find("x-b", 1, true))
            -- read twice: decoded once, the same table
            assert(c:send(get("/kept")))
            assert.are.equal(body, assert(response(c)).body)
        end)

        it("shows the lazy fields to pairs, not to rawget before use",
        function()
            local c = connect()
            assert(c:send(get("/lazy?a=1", "X-A: b\r\n")))
            assert.are.equal(table.concat({
                "raw headers before=nil",
                "raw query before=nil",
                "metatable=luaserv.request",
                "setmetatable=false",
                "pairs=body:string,headers:table,method:string,path:string," ..
                    "query:table,url:string,version:string",
                "same headers=true",
                "query a twice=1,1",
                "query after nil=nil",
                "next fields=6",
                "",
            }, "\n"), assert(response(c)).body)
        end)

        it("keeps headers the app set before reading them", function()
            local c = connect()
            assert(c:send(get("/preset")))
            assert.are.equal("yes nil", assert(response(c)).body)
        end)

        it("gives the path of an absolute-form target", function()
            local c = connect()
            assert(c:send(get("http://t/echo?z=1")))
            local body = assert(response(c)).body
            assert.truthy(body:find("path=/echo\n", 1, true))
            assert.truthy(body:find("q:z=1\n", 1, true))
        end)

        it("answers HTTP/1.0 keep-alive and then closes a plain 1.0 request",
        function()
            local c = connect()
            assert(c:send("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"))
            local r = assert(response(c))
            assert.are.equal("keep-alive", r.headers.connection)
            assert.are.equal("hello", r.body)
            assert(c:send("GET /echo HTTP/1.0\r\n\r\n"))
            r = assert(response(c))
            assert.are.equal("close", r.headers.connection)
            assert.truthy(r.body:find("version=1.0\n", 1, true))
            assert(c:wait_closed(5))
        end)

        it("streams to HTTP/1.0 without chunks, ending with the close",
        function()
            local c = connect()
            assert(c:send("GET /stream-sync HTTP/1.0\r\n\r\n"))
            local r = assert(response(c))
            assert.is_nil(r.headers["transfer-encoding"])
            assert.are.equal("abc", r.body)
        end)

        it("sends no body for HEAD, with the length of the GET body",
        function()
            local c = connect()
            assert(c:send("HEAD / HTTP/1.1\r\nHost: t\r\n\r\n" ..
                          "HEAD /stream-sync HTTP/1.1\r\nHost: t\r\n\r\n" ..
                          get("/")))
            local r = assert(response(c, true))
            assert.are.equal("5", r.headers["content-length"])
            r = assert(response(c, true))
            assert.are.equal("chunked", r.headers["transfer-encoding"])
            assert.are.equal("hello", assert(response(c)).body)
        end)

        it("never sends a body or length with 204 and 304", function()
            local c = connect()
            assert(c:send(get("/status?code=204&body=zz") ..
                          get("/status?code=304&body=zz") .. get("/")))
            for _, code in ipairs({ 204, 304 }) do
                local r = assert(response(c))
                assert.are.equal(code, r.status)
                assert.is_nil(r.headers["content-length"])
            end
            assert.are.equal("hello", assert(response(c)).body)
        end)

        it("answers 500 and closes when onMessage raises", function()
            srv:expect_error("boom in onMessage")
            local c = connect()
            assert(c:send(get("/error") .. get("/")))
            local r = assert(response(c))
            assert.are.equal(500, r.status)
            assert.are.equal("close", r.headers.connection)
            assert(c:wait_closed(5))
        end)
    end)

    describe("bad requests", function()
        -- Each is followed by a pipelined request that must never run.
        local SMUGGLED = "GET /smuggled HTTP/1.1\r\nHost: t\r\n\r\n"
        local cases = {
            { "bare CR in a header value",
              "GET / HTTP/1.1\r\nHost: t\r\nX: a\rTransfer-Encoding: chunked" ..
              "\r\n\r\n" },
            { "space before the colon", "GET / HTTP/1.1\r\nHost : t\r\n\r\n" },
            { "space inside a name", "GET / HTTP/1.1\r\nHost: t\r\nX Y: z\r\n\r\n" },
            { "obs-fold", "GET / HTTP/1.1\r\nHost: t\r\nX: a\r\n b\r\n\r\n" },
            { "obs-fold after an empty value",
              "GET / HTTP/1.1\r\nHost: t\r\nX:\r\n b\r\n\r\n" },
            { "Transfer-Encoding in HTTP/1.0",
              "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" },
            { "Transfer-Encoding twice",
              "POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip\r\n" ..
              "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n" },
            { "Content-Length with Transfer-Encoding",
              "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n" ..
              "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n" },
            { "Transfer-Encoding with Content-Length",
              "POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n" ..
              "Content-Length: 5\r\n\r\n0\r\n\r\n" },
            { "two Content-Length headers",
              "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\n" ..
              "Content-Length: 2\r\n\r\nab" },
            { "a bad Content-Length", "POST / HTTP/1.1\r\nHost: t\r\n" ..
              "Content-Length: +1\r\n\r\na" },
            { "no Host in HTTP/1.1", "GET / HTTP/1.1\r\n\r\n" },
            { "two Host headers", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n" },
            { "a bad request line", "HELLO\r\n\r\n" },
            { "a space in the target", "GET /a b HTTP/1.1\r\nHost: t\r\n\r\n" },
            { "bare LF line ends", "GET / HTTP/1.1\nHost: t\n\n" },
            { "NUL in a header", "GET / HTTP/1.1\r\nHost: t\r\nX: a\0b\r\n\r\n" },
            { "a bad chunk size", "POST / HTTP/1.1\r\nHost: t\r\n" ..
              "Transfer-Encoding: chunked\r\n\r\nzz\r\n" },
        }
        for _, case in ipairs(cases) do
            it("400 for " .. case[1] .. ", then close", function()
                local c = connect()
                assert(c:send(case[2] .. SMUGGLED))
                local r = assert(response(c))
                assert.are.equal(400, r.status)
                assert.are.equal("close", r.headers.connection)
                assert(c:wait_closed(5))
                assert.are.equal("", c.buf)
                assert.are.equal(0, srv:count_log("request GET /smuggled"))
            end)
        end

        -- nginx's answer to a transfer coding other than chunked: 501
        for _, te in ipairs({ "gzip", "identity", "chunked, gzip",
                              "gzip, chunked" }) do
            it("501 for Transfer-Encoding: " .. te .. ", then close",
            function()
                local c = connect()
                assert(c:send("POST / HTTP/1.1\r\nHost: t\r\n" ..
                              "Transfer-Encoding: " .. te ..
                              "\r\n\r\n0\r\n\r\n" .. SMUGGLED))
                local r = assert(response(c))
                assert.are.equal(501, r.status)
                assert.are.equal("close", r.headers.connection)
                assert(c:wait_closed(5))
                assert.are.equal(0, srv:count_log("request GET /smuggled"))
            end)
        end

        it("505 for HTTP/2.0 in a request line", function()
            local c = connect()
            assert(c:send("GET / HTTP/2.0\r\nHost: t\r\n\r\n" .. SMUGGLED))
            assert.are.equal(505, assert(response(c)).status)
            assert(c:wait_closed(5))
        end)

        it("405 for CONNECT", function()
            local c = connect()
            assert(c:send("CONNECT a:443 HTTP/1.1\r\nHost: a\r\n\r\n" ..
                          SMUGGLED))
            assert.are.equal(405, assert(response(c)).status)
            assert(c:wait_closed(5))
        end)

        it("answers what came before a bad request, then 400", function()
            local c = connect()
            assert(c:send(get("/") .. "GET / HTTP/1.1\r\nHost : t\r\n\r\n" ..
                          SMUGGLED))
            assert.are.equal("hello", assert(response(c)).body)
            assert.are.equal(400, assert(response(c)).status)
            assert(c:wait_closed(5))
            assert.are.equal(0, srv:count_log("request GET /smuggled"))
        end)

        it("calls onError with BAD_INPUT", function()
            local c = connect()
            assert(c:send("GET / HTTP/1.1\r\nHost: t\r\nX: a\r\n b\r\n\r\n"))
            assert.are.equal(400, assert(response(c)).status)
            assert.truthy(srv:wait_log("onError 2 400 Bad Request: obs-fold",
                                       5))
        end)
    end)

    describe("limits", function()
        -- the fixture sets maxHeaderSize 4096 and maxBodySize 65536
        it("431 for a head over maxHeaderSize", function()
            local c = connect()
            assert(c:send(get("/", "X-Big: " .. string.rep("a", 5000) ..
                                   "\r\n")))
            local r = assert(response(c))
            assert.are.equal(431, r.status)
            assert(c:wait_closed(5))
            assert.truthy(srv:wait_log("onError 1 431", 5))
        end)

        it("431 for a long URL, and for many small headers", function()
            local c = connect()
            assert(c:send(get("/" .. string.rep("u", 5000))))
            assert.are.equal(431, assert(response(c)).status)
            c = connect()
            assert(c:send(get("/", string.rep("X-N: 1\r\n", 700))))
            assert.are.equal(431, assert(response(c)).status)
        end)

        it("431 for a head that never ends, before it ends", function()
            local c = connect()
            assert(c:send("GET / HTTP/1.1\r\nHost: t\r\nX: " ..
                          string.rep("b", 5000)))
            assert.are.equal(431, assert(response(c)).status)
        end)

        it("takes a head just under maxHeaderSize", function()
            local c = connect()
            assert(c:send(get("/", "X-Big: " .. string.rep("a", 3900) ..
                                   "\r\n")))
            assert.are.equal(200, assert(response(c)).status)
        end)

        it("413 at once for a declared length over maxBodySize", function()
            local c = connect()
            assert(c:send("POST /size HTTP/1.1\r\nHost: t\r\n" ..
                          "Content-Length: 65537\r\n\r\n"))
            local r = assert(response(c))
            assert.are.equal(413, r.status)
            assert(c:wait_closed(5))
        end)

        it("413 for a chunked body over maxBodySize", function()
            local c = connect()
            local chunk = string.rep("c", 16384)
            local req = "POST /size HTTP/1.1\r\nHost: t\r\n" ..
                "Transfer-Encoding: chunked\r\n\r\n"
            for _ = 1, 5 do
                req = req .. string.format("%x\r\n", #chunk) .. chunk .. "\r\n"
            end
            assert(c:send(req .. "0\r\n\r\n"))
            assert.are.equal(413, assert(response(c)).status)
        end)

        it("takes a body of exactly maxBodySize, chunked or not", function()
            local c = connect()
            local body = string.rep("b", 65536)
            assert(c:send("POST /size HTTP/1.1\r\nHost: t\r\n" ..
                          "Content-Length: 65536\r\n\r\n" .. body))
            assert.are.equal("65536", assert(response(c)).body)
            assert(c:send("POST /size HTTP/1.1\r\nHost: t\r\n" ..
                          "Transfer-Encoding: chunked\r\n\r\n" ..
                          "8000\r\n" .. body:sub(1, 32768) .. "\r\n" ..
                          "8000\r\n" .. body:sub(1, 32768) .. "\r\n0\r\n\r\n"))
            assert.are.equal("65536", assert(response(c)).body)
        end)

        it("413 for Expect: 100-continue with a length over the limit, " ..
           "without 100", function()
            local c = connect()
            assert(c:send("POST /size HTTP/1.1\r\nHost: t\r\n" ..
                          "Content-Length: 100000\r\n" ..
                          "Expect: 100-continue\r\n\r\n"))
            assert.are.equal(413, assert(response(c)).status)
        end)

        it("sends 100 Continue, then the answer", function()
            local c = connect()
            assert(c:send("POST /size HTTP/1.1\r\nHost: t\r\n" ..
                          "Content-Length: 3\r\nExpect: 100-continue\r\n\r\n"))
            assert.are.equal(100, assert(response(c)).status)
            assert(c:send("abc"))
            assert.are.equal("3", assert(response(c)).body)
        end)
    end)

    describe("lingering close", function()
        it("delivers the error while the client is still sending", function()
            local c = connect()
            -- 413 is decided from the head; 4 MB of body keep coming.
            local ok = c:send("POST /size HTTP/1.1\r\nHost: t\r\n" ..
                              "Content-Length: 4000000\r\n\r\n" ..
                              string.rep("x", 4000000))
            assert.truthy(ok)
            local r = assert(response(c))
            assert.are.equal(413, r.status)
            assert(c:wait_closed(5))
        end)

        it("delivers a 400 followed by a megabyte of garbage", function()
            local c = connect()
            assert(c:send("GET / HTTP/1.1\r\nHost : t\r\n\r\n" ..
                          string.rep("garbage\r\n", 100000)))
            assert.are.equal(400, assert(response(c)).status)
            assert(c:wait_closed(5))
        end)

        it("closes within about a second when the client stays", function()
            local c = connect()
            assert(c:send("GET / HTTP/1.1\r\n\r\n"))
            assert.are.equal(400, assert(response(c)).status)
            local t0 = client.gettime()
            assert(c:wait_closed(5))
            assert.is_true(client.gettime() - t0 < 3)
        end)
    end)
end)

describe("http:// listen options", function()
    it("refuses a bad maxHeaderSize at startup", function()
        local r = server.run({ "spec/fixtures/apps/http_bad_option.lua",
                               "check" })
        assert.are.equal(1, r.code, r.stderr)
        assert.truthy(r.stderr:find("bad option 'maxHeaderSize'", 1, true),
                      r.stderr)
    end)
end)

describe("http:// graceful stop", function()
    after_each(function() server.cleanup() end)

    it("closes idle keep-alive connections at once and finishes the " ..
       "request in flight with Connection: close", function()
        local srv = server.start(APP)
        local idle = client.must_connect(srv.port)
        local busy = client.must_connect(srv.port)
        finally(function() idle:close(); busy:close() end)
        assert(idle:send(get("/")))
        assert.are.equal("hello", assert(response(idle)).body)
        assert(busy:send(get("/later?ms=700&id=9")))
        client.sleep(0.1)
        server.kill(srv.pid, "QUIT")
        assert(idle:wait_closed(2))
        local r = assert(response(busy))
        assert.are.equal("later 9", r.body)
        assert.are.equal("close", r.headers.connection)
        assert(busy:wait_closed(5))
        srv:stop()
    end)
end)
