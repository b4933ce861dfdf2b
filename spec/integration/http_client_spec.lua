-- luaserv.http_client from the handlers of a luaserv app
-- (spec/fixtures/apps/http_client.lua), against luaserv's own http://
-- listener (keep-alive, chunked streaming from conn:send{stream = true},
-- Connection: close, bodies, timeouts) and against Debian's nginx started
-- by the spec on a free loopback port (keep-alive seen in nginx's access
-- log, SSI's chunked output, static files, redirects).
local server = require "helpers.server"
local nginx = require "helpers.nginx"
local socket_http = require "socket.http"
local cjson = require "cjson"

local APP = "spec/fixtures/apps/http_client.lua"

local function urlencode(s)
    return (s:gsub("[^%w%-_.~]", function(c)
        return ("%%%02X"):format(c:byte())
    end))
end

describe("luaserv.http_client", function()
    local srv, port2, ng

    -- Ask the front listener to fetch url (n times, with the options in
    -- extra: a query string); returns the array of results.
    local function fetch(url, extra)
        local q = "/fetch?url=" .. urlencode(url) .. (extra and ("&" .. extra) or "")
        local body, code = socket_http.request("http://127.0.0.1:" .. srv.port .. q)
        assert.are.equal(200, code, tostring(body) .. "\n--- log ---\n" ..
                         server.tail(srv:log(), 30))
        return cjson.decode(body)
    end

    local function origin(path) return "http://127.0.0.1:" .. port2 .. path end

    setup(function()
        srv, port2 = server.start_two(APP)
        ng = nginx.start {
            locations = [[
        location = /hello { default_type text/plain; return 200 "hello from nginx\n"; }
        location = /ssi.html { ssi on; }
        location = /close { keepalive_timeout 0; default_type text/plain; return 200 "bye"; }
        location = /moved { return 301 /hello; }
        location = /post { default_type text/plain; return 200 "posted $content_length"; }
]],
            files = {
                ["www/ssi.html"] = ("line of static text\n"):rep(5000) ..
                    '<!--# set var="x" value="ssi-works" --><!--# echo var="x" -->\n',
                ["www/big.bin"] = ("0123456789abcdef"):rep(128 * 1024),
            },
        }
    end)
    teardown(function()
        local ok, err = pcall(function() if srv then srv:stop() end end)
        if ng then ng:stop() end
        assert(ok, err)
    end)

    describe("against luaserv's http:// listener", function()
        it("GETs status, reason, version, lower-case headers and body",
        function()
            local r = fetch(origin("/hello"))[1]
            assert.are.equal(200, r.status, r.err)
            assert.are.equal("OK", r.reason)
            assert.are.equal("1.1", r.version)
            assert.are.equal("text/plain", r.headers["content-type"])
            assert.are.equal("luaserv", r.headers["x-origin"])
            assert.are.equal("5", r.headers["content-length"])
            assert.are.equal("hello", r.body)
        end)

        it("keeps the connection alive between requests", function()
            local rs = fetch(origin("/conn"), "n=3")
            assert.are.equal(3, #rs)
            assert.is_truthy(rs[1].body, rs[1].err)
            assert.are.equal(rs[1].body, rs[2].body)
            assert.are.equal(rs[1].body, rs[3].body)
        end)

        it("uses a new connection per request with keepalive = false",
        function()
            local rs = fetch(origin("/conn"), "n=3&keepalive=0")
            local seen = {}
            for i, r in ipairs(rs) do
                assert.is_truthy(r.body, r.err)
                assert.is_nil(seen[r.body], "request " .. i .. " reused " ..
                              r.body)
                seen[r.body] = true
            end
        end)

        it("reads a chunked response streamed with conn:send{stream = true}",
        function()
            local r = fetch(origin("/stream?n=4"))[1]
            assert.are.equal(200, r.status, r.err)
            assert.are.equal("chunked", r.headers["transfer-encoding"])
            assert.are.equal("part 1\npart 2\npart 3\npart 4\nend\n", r.body)
            -- and the connection is still good for the next one
            local rs = fetch(origin("/stream?n=2"), "n=2")
            assert.are.equal("part 1\npart 2\nend\n", rs[2].body)
        end)

        it("sends a body and headers; Host comes from the URL", function()
            local r = fetch(origin("/echo"), "method=POST&body=a%3D1%26b&h=yes")[1]
            assert.are.equal(200, r.status, r.err)
            local e = cjson.decode(r.body)
            assert.are.equal("POST", e.method)
            assert.are.equal("a=1&b", e.body)
            assert.are.equal("127.0.0.1:" .. port2, e.headers.host)
            assert.are.equal("yes", e.headers["x-test"])
            assert.are.equal("5", e.headers["content-length"])
            assert.are.equal("luaserv", e.headers["user-agent"])
        end)

        it("reads a 4 MiB body; refuses one over maxBodySize", function()
            local r = fetch(origin("/big?n=" .. 4 * 1024 * 1024))[1]
            assert.are.equal(4 * 1024 * 1024, r.body and #r.body, r.err)
            r = fetch(origin("/big?n=100000"), "max=1000")[1]
            assert.are.equal("response body too large (over 1000 bytes)", r.err)
        end)

        it("closes after Connection: close and connects again", function()
            local rs = fetch(origin("/close"), "n=2")
            for _, r in ipairs(rs) do
                assert.are.equal("bye", r.body, r.err)
                assert.are.equal("close", r.headers.connection)
            end
        end)

        it("passes other statuses through", function()
            local r = fetch(origin("/status?code=404"))[1]
            assert.are.equal(404, r.status, r.err)
            assert.are.equal("Not Found", r.reason)
            assert.are.equal("", r.body)
        end)

        it("returns 'connection refused' for a port nobody listens on",
        function()
            local r = fetch("http://127.0.0.1:" .. server.free_port() .. "/")[1]
            assert.are.equal("connection refused", r.err)
        end)

        it("returns 'timeout' when the answer is later than the timeout",
        function()
            local r = fetch(origin("/slow?s=1"), "timeout=200")[1]
            assert.are.equal("timeout", r.err)
        end)

        it("fails https:// to a plain HTTP port in the handshake", function()
            local r = fetch("https://127.0.0.1:" .. port2 .. "/")[1]
            assert.is_truthy(r.err:find("^handshake failed"), r.err)
        end)
    end)

    describe("against nginx", function()
        local function ng_url(path) return "http://127.0.0.1:" .. ng.port .. path end

        -- The access log lines that the request(s) of fn() added.
        local function logged(fn)
            local before = #ng:access_log()
            local res = fn()
            local lines = server.wait_until(function()
                local all = ng:access_log()
                if #all >= before + #res then
                    local t = {}
                    for i = before + 1, #all do t[#t + 1] = all[i] end
                    return t
                end
            end, 10)
            assert.is_truthy(lines, "nginx did not log the requests")
            return res, lines
        end

        it("GETs a response", function()
            local r = fetch(ng_url("/hello"))[1]
            assert.are.equal(200, r.status, r.err)
            assert.matches("^nginx", r.headers.server)
            assert.are.equal("hello from nginx\n", r.body)
        end)

        it("keeps the connection alive (one connection in nginx's log)",
        function()
            local rs, lines = logged(function()
                return fetch(ng_url("/hello"), "n=3")
            end)
            for _, r in ipairs(rs) do assert.are.equal("hello from nginx\n", r.body) end
            assert.are.equal(3, #lines)
            assert.are.equal(lines[1].conn, lines[2].conn)
            assert.are.equal(lines[1].conn, lines[3].conn)
            assert.are.equal(lines[1].requests + 1, lines[2].requests)
            assert.are.equal(lines[1].requests + 2, lines[3].requests)
        end)

        it("asks nginx to close with keepalive = false", function()
            local rs, lines = logged(function()
                return fetch(ng_url("/hello"), "n=2&keepalive=0")
            end)
            assert.are.equal("close", rs[1].headers.connection)
            assert.are_not.equal(lines[1].conn, lines[2].conn)
            assert.are.equal(1, lines[2].requests)
        end)

        it("reads SSI's chunked output", function()
            local r = fetch(ng_url("/ssi.html"))[1]
            assert.are.equal(200, r.status, r.err)
            assert.are.equal("chunked", r.headers["transfer-encoding"])
            assert.is_nil(r.headers["content-length"])
            assert.are.equal(("line of static text\n"):rep(5000) ..
                             "ssi-works\n", r.body)
        end)

        it("reads a 2 MiB static file; refuses it over maxBodySize",
        function()
            local r = fetch(ng_url("/big.bin"))[1]
            assert.are.equal(200, r.status, r.err)
            assert.are.equal(tostring(2 * 1024 * 1024),
                             r.headers["content-length"])
            assert.are.equal(("0123456789abcdef"):rep(128 * 1024), r.body)
            r = fetch(ng_url("/big.bin"), "max=65536")[1]
            assert.are.equal("response body too large (over 65536 bytes)",
                             r.err)
        end)

        it("follows nginx's Connection: close with a new connection",
        function()
            local rs, lines = logged(function()
                return fetch(ng_url("/close"), "n=2")
            end)
            assert.are.equal("bye", rs[2].body, rs[2].err)
            assert.are.equal("close", rs[1].headers.connection)
            assert.are_not.equal(lines[1].conn, lines[2].conn)
        end)

        it("does not follow redirects", function()
            local r = fetch(ng_url("/moved"))[1]
            assert.are.equal(301, r.status, r.err)
            assert.matches("/hello$", r.headers.location)
        end)

        it("POSTs a body nginx sees the length of", function()
            local r = fetch(ng_url("/post"), "method=POST&body=twelve%20bytes")[1]
            assert.are.equal("posted 12", r.body, r.err)
        end)
    end)
end)
