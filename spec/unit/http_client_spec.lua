-- lua/luaserv/http_client.lua against a scripted fake cosocket
-- (spec/helpers/fake_cosocket.lua): URLs, the request bytes, responses
-- that arrive in any split (Content-Length, chunked, until close), the
-- keep-alive decision, the body bound, and errors.
local fake = require "helpers.fake_cosocket"

describe("luaserv.http_client", function()
    local http

    setup(function()
        fake.install("luaserv.http_client")
        http = require "luaserv.http_client"
    end)
    teardown(function() fake.uninstall("luaserv.http_client") end)
    after_each(function()
        assert.are.equal(0, fake.left(), "a queued fake socket was not used")
    end)

    -- request(opts) against a fake replaying the response after the head
    -- (and the body, if any) were sent.
    local function run(opts, response, fopts)
        local parts = type(response) == "table" and response or { response }
        local sends = (opts.body ~= nil) and 2 or 1
        local s = fake.new(fake.script(sends, parts), fopts)
        fake.queue(s)
        local res, err = http.request(opts)
        return res, err, s
    end

    local OK = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"

    describe("parse_url", function()
        it("splits host, port, path and the Host header", function()
            assert.are.same({ "http", "example.com", 80, "/", "example.com" },
                            { http.parse_url("http://example.com") })
            assert.are.same({ "http", "127.0.0.1", 8080, "/a/b?x=1&y",
                              "127.0.0.1:8080" },
                            { http.parse_url("HTTP://127.0.0.1:8080/a/b?x=1&y#f") })
            assert.are.same({ "http", "::1", 81, "/?q", "[::1]:81" },
                            { http.parse_url("http://[::1]:81?q") })
            assert.are.same({ "http", "h", 80, "/", "h" },
                            { http.parse_url("http://h:80/") })
            assert.are.same({ "https", "h", 443, "/x", "h" },
                            { http.parse_url("HTTPS://h:443/x") })
            assert.are.same({ "https", "h", 8443, "/", "h:8443" },
                            { http.parse_url("https://h:8443") })
        end)

        it("refuses what it cannot serve", function()
            assert.are.same({ nil, "unsupported scheme 'ftp'" },
                            { http.parse_url("ftp://example.com/") })
            assert.are.same({ nil, "bad url: example.com/x" },
                            { http.parse_url("example.com/x") })
            assert.are.same({ nil, "bad url: bad port in http://h:0/" },
                            { http.parse_url("http://h:0/") })
            assert.are.same({ nil, "bad url: bad host in http:///x" },
                            { http.parse_url("http:///x") })
            assert.are.same({ nil, "bad url: user info is not supported" },
                            { http.parse_url("http://u:p@h/") })
            assert.are.same({ nil, "bad url: space or control character " ..
                                   "in the path" },
                            { http.parse_url("http://h/a b") })
        end)
    end)

    describe("the request", function()
        it("is a GET with Host and User-Agent by default", function()
            local res, err, s = run({ url = "http://127.0.0.1:8080/p?q=1" }, OK)
            assert.is_truthy(res, err)
            assert.are.equal("127.0.0.1:8080", s.connected_to)
            assert.are.same({ "GET /p?q=1 HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n" ..
                              "User-Agent: luaserv\r\n\r\n" }, s.sent)
        end)

        it("leaves the default port out of Host", function()
            local _, _, s = run({ url = "http://example.com/" }, OK)
            assert.are.equal("example.com:80", s.connected_to)
            assert.matches("\r\nHost: example.com\r\n", s:written(), 1, true)
        end)

        it("sends the caller's headers (sorted, arrays one line each), " ..
           "replacing Host and User-Agent", function()
            local _, _, s = run({ url = "http://h/", headers = {
                ["X-B"] = 2, ["x-a"] = { "1", "one" }, Host = "other",
                ["User-Agent"] = "me",
                ["Content-Length"] = "99", ["Transfer-Encoding"] = "chunked",
            } }, OK)
            assert.are.equal("GET / HTTP/1.1\r\nHost: other\r\n" ..
                "User-Agent: me\r\nX-B: 2\r\nx-a: 1\r\nx-a: one\r\n\r\n",
                s:written())
        end)

        it("sends a body with its Content-Length, POST by default", function()
            local _, _, s = run({ url = "http://h/", body = "a=1" }, OK)
            assert.are.same({ "POST / HTTP/1.1\r\nHost: h\r\n" ..
                              "User-Agent: luaserv\r\nContent-Length: 3\r\n\r\n",
                              "a=1" }, s.sent)
        end)

        it("sends a body given as an array of strings", function()
            local _, _, s = run({ url = "http://h/", method = "put",
                                  body = { "ab", "", "cde" } }, OK)
            assert.matches("^PUT / HTTP/1.1\r\n", s.sent[1])
            assert.matches("\r\nContent-Length: 5\r\n", s.sent[1], 1, true)
            assert.are.equal("abcde", s.sent[2])
        end)

        it("gives a POST without a body Content-Length: 0", function()
            local _, _, s = run({ url = "http://h/", method = "POST" }, OK)
            assert.matches("\r\nContent%-Length: 0\r\n\r\n$", s:written())
        end)

        it("asks to close when keepalive is false", function()
            local res, _, s = run({ url = "http://h/", keepalive = false }, OK)
            assert.are.equal("hello", res.body)
            assert.matches("\r\nConnection: close\r\n\r\n$", s:written())
            assert.is_true(s.close_called)
            assert.is_nil(s.keepalive)
        end)

        it("applies the timeout to the socket", function()
            local _, _, s = run({ url = "http://h/", timeout = 1500 }, OK)
            assert.are.same({ { 1500, 1500, 1500 } }, s.timeouts)
        end)

        it("raises on wrong option types and header injection", function()
            assert.has_error(function() http.request("http://h/") end,
                "bad argument #1 to 'request' (table expected, got string)")
            assert.has_error(function() http.request {} end,
                "bad option 'url' (string expected, got nil)")
            assert.has_error(function()
                http.request { url = "http://h/", method = "GET /x" }
            end, "bad option 'method' (a method name expected, got GET /x)")
            assert.has_error(function()
                http.request { url = "http://h/", keepalive = 1 }
            end, "bad option 'keepalive' (boolean expected, got number)")
            assert.has_error(function()
                http.request { url = "http://h/", maxBodySize = 1.5 }
            end, "bad option 'maxBodySize' (non-negative integer expected, " ..
                 "got 1.5)")
            assert.has_error(function()
                http.request { url = "http://h/", timeout = "1" }
            end, "bad option 'timeout' (non-negative number of ms expected, " ..
                 "got 1)")
            assert.has_error(function()
                http.request { url = "http://h/", headers = { X = "a\r\nB: c" } }
            end, "bad value for header 'X' (CR, LF or NUL)")
            assert.has_error(function()
                http.request { url = "http://h/", headers = { ["A B"] = "x" } }
            end, 'bad header name "A B"')
            assert.has_error(function()
                http.request { url = "http://h/", body = 5 }
            end, "bad option 'body' (string or array of strings expected, " ..
                 "got number)")
        end)

        it("returns nil, err for a URL it cannot use, without connecting",
        function()
            assert.are.same({ nil, "unsupported scheme 'ftp'" },
                            { http.request { url = "ftp://h/" } })
        end)
    end)

    describe("the response", function()
        local function each_split(response, opts, check)
            for _, parts in ipairs(fake.splits(response)) do
                local res, err, s = run(opts or { url = "http://h/" }, parts)
                assert.is_truthy(res, tostring(err) .. " for split of " ..
                                 #parts)
                check(res, s)
            end
        end

        it("reads a Content-Length body in every split", function()
            each_split("HTTP/1.1 201 Created\r\nContent-Type: text/plain\r\n" ..
                       "X-Empty:\r\nContent-Length: 7\r\n\r\nab\r\ncd\n",
            nil, function(res, s)
                assert.are.equal(201, res.status)
                assert.are.equal("Created", res.reason)
                assert.are.equal("1.1", res.version)
                assert.are.same({ ["content-type"] = "text/plain",
                                  ["x-empty"] = "", ["content-length"] = "7" },
                                res.headers)
                assert.are.equal("ab\r\ncd\n", res.body)
                assert.is_true(s:drained())
                assert.are.same({ idle = 60000, pool = 32 }, s.keepalive)
            end)
        end)

        it("reads a chunked body with extensions and trailers in every split",
        function()
            each_split("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" ..
                       "5\r\nhello\r\na;ext=1\r\n, world!\r\n\r\n" ..
                       "0\r\nX-Trailer: t\r\n\r\n",
            nil, function(res, s)
                assert.are.equal("hello, world!\r\n", res.body)
                assert.is_nil(res.headers["x-trailer"])
                assert.is_true(s:drained())
                assert.is_truthy(s.keepalive)
            end)
        end)

        it("reads a body that ends with the connection in every split",
        function()
            each_split("HTTP/1.1 200 OK\r\nServer: old\r\n\r\nall of it\r\n",
            nil, function(res, s)
                assert.are.equal("all of it\r\n", res.body)
                assert.is_nil(s.keepalive)
            end)
        end)

        it("joins a repeated header and lower-cases names", function()
            local res = run({ url = "http://h/" },
                "HTTP/1.1 200 OK\r\nSet-Cookie: a=1\r\nSET-COOKIE: b=2\r\n" ..
                "Content-Length: 0\r\n\r\n")
            assert.are.equal("a=1, b=2", res.headers["set-cookie"])
            assert.are.equal("", res.body)
        end)

        it("skips interim 1xx responses", function()
            local res, _, s = run({ url = "http://h/", body = "x" },
                "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\n" ..
                "Link: </a>\r\n\r\n" .. OK)
            assert.are.equal(200, res.status)
            assert.are.equal("hello", res.body)
            assert.is_nil(res.headers.link)
            assert.is_true(s:drained())
        end)

        it("reads no body for HEAD, 204 and 304", function()
            local res, _, s = run({ url = "http://h/", method = "HEAD" },
                "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n")
            assert.are.equal("", res.body)
            assert.is_truthy(s.keepalive)
            for _, st in ipairs { "204 No Content", "304 Not Modified" } do
                res, _, s = run({ url = "http://h/" },
                    "HTTP/1.1 " .. st .. "\r\nContent-Length: 3\r\n\r\n")
                assert.are.equal("", res.body)
                assert.is_true(s:drained())
            end
        end)
    end)

    describe("keep-alive", function()
        it("pools with the given idle time and pool size", function()
            local _, _, s = run({ url = "http://h/", keepaliveTimeout = 5000,
                                  keepalivePool = 4 }, OK)
            assert.are.same({ idle = 5000, pool = 4 }, s.keepalive)
        end)

        it("closes on Connection: close from the server", function()
            local res, _, s = run({ url = "http://h/" },
                "HTTP/1.1 200 OK\r\nConnection: close\r\n" ..
                "Content-Length: 2\r\n\r\nok")
            assert.are.equal("ok", res.body)
            assert.is_nil(s.keepalive)
            assert.is_true(s.close_called)
        end)

        it("closes when the caller asked the server to close", function()
            local _, _, s = run({ url = "http://h/",
                                  headers = { Connection = "close" } }, OK)
            assert.is_nil(s.keepalive)
            assert.are.equal(1, select(2, s:written():gsub("Connection", "")))
        end)

        it("closes after HTTP/1.0 unless it says keep-alive", function()
            local _, _, s = run({ url = "http://h/" },
                "HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok")
            assert.is_nil(s.keepalive)
            _, _, s = run({ url = "http://h/" },
                "HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\n" ..
                "Content-Length: 2\r\n\r\nok")
            assert.is_truthy(s.keepalive)
        end)

        it("sends an idempotent request again when the pooled connection " ..
           "was closed", function()
            local stale = fake.new({ { sent = 1 } }, { reused = 3 })
            local fresh = fake.new(fake.script(1, { OK }))
            fake.queue(stale, fresh)
            local res, err = http.request { url = "http://h/" }
            assert.are.equal("hello", res and res.body, err)
            assert.are.equal(1, #stale.sent)
            assert.are.same(stale.sent, fresh.sent)
        end)

        it("does not send a POST again", function()
            local stale = fake.new({ { sent = 2 } }, { reused = 1 })
            fake.queue(stale)
            assert.are.same({ nil, "closed" },
                            { http.request { url = "http://h/", body = "x" } })
        end)

        it("does not retry on a fresh connection", function()
            local res, err = run({ url = "http://h/" }, {})
            assert.are.same({ nil, "closed" }, { res, err })
        end)

        it("does not retry once the response began", function()
            local stale = fake.new(fake.script(1, { "HTTP/1.1 200 OK\r\n" }),
                                   { reused = 1 })
            fake.queue(stale)
            assert.are.same({ nil, "closed" },
                            { http.request { url = "http://h/" } })
        end)
    end)

    describe("maxBodySize", function()
        it("refuses a longer Content-Length before reading it", function()
            local res, err, s = run({ url = "http://h/", maxBodySize = 4 }, OK)
            assert.is_nil(res)
            assert.are.equal("response body too large (over 4 bytes)", err)
            assert.are.same({ "*l", "*l", "*l" }, s.reads)
            assert.is_true(s.close_called)
        end)

        it("takes a body of exactly the limit", function()
            local res = run({ url = "http://h/", maxBodySize = 5 }, OK)
            assert.are.equal("hello", res.body)
        end)

        it("bounds chunked bodies", function()
            local res, err = run({ url = "http://h/", maxBodySize = 6 },
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" ..
                "4\r\nabcd\r\n4\r\nefgh\r\n0\r\n\r\n")
            assert.is_nil(res)
            assert.are.equal("response body too large (over 6 bytes)", err)
        end)

        it("bounds bodies that end with the connection", function()
            local res, err = run({ url = "http://h/", maxBodySize = 3 },
                { "HTTP/1.1 200 OK\r\n\r\nab", "cd" })
            assert.is_nil(res)
            assert.are.equal("response body too large (over 3 bytes)", err)
        end)

        it("defaults to 64 MiB", function()
            local res, err = run({ url = "http://h/" },
                "HTTP/1.1 200 OK\r\nContent-Length: " .. 64 * 1024 * 1024 + 1 ..
                "\r\n\r\n")
            assert.is_nil(res)
            assert.are.equal("response body too large (over 67108864 bytes)",
                             err)
        end)
    end)

    describe("errors", function()
        it("returns the connect error", function()
            fake.queue(fake.new({}, { connect_err = "connection refused" }))
            assert.are.same({ nil, "connection refused" },
                            { http.request { url = "http://127.0.0.1:1/" } })
        end)

        it("returns the send error", function()
            local res, err = run({ url = "http://h/" }, {},
                                 { send_err = "broken pipe" })
            assert.is_nil(res)
            assert.are.equal("broken pipe", err)
        end)

        it("returns timeout, closing", function()
            local res, err, s = run({ url = "http://h/" },
                { "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhe",
                  fake.TIMEOUT })
            assert.is_nil(res)
            assert.are.equal("timeout", err)
            assert.is_true(s.close_called)
        end)

        local bad = {
            { "ICY 200 OK\r\n\r\n", "bad response: bad status line" },
            { "HTTP/1.1 20 OK\r\n\r\n", "bad response: bad status line" },
            { "HTTP/1.1 200 OK\r\nno colon\r\n\r\n",
              "bad response: bad header line" },
            { "HTTP/1.1 200 OK\r\n folded: x\r\n\r\n",
              "bad response: bad header line" },
            { "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
              "bad response: bad Content-Length" },
            { "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2" ..
              "\r\n\r\nab", "bad response: bad Content-Length" },
            { "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n" ..
              "Transfer-Encoding: chunked\r\n\r\n",
              "bad response: both Transfer-Encoding and Content-Length" },
            { "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
              "bad response: bad chunk size" },
            { "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5x\r\n",
              "bad response: bad chunk size" },
            { "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" ..
              "1\r\nab\r\n", "bad response: chunk not followed by CRLF" },
            { "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nab",
              "closed" },
        }
        for _, c in ipairs(bad) do
            it("returns '" .. c[2] .. "' for " .. ("%q"):format(c[1]):sub(1, 50),
            function()
                local res, err, s = run({ url = "http://h/" }, c[1])
                assert.is_nil(res)
                assert.are.equal(c[2], err)
                assert.is_true(s.closed)
                assert.is_nil(s.keepalive)
            end)
        end

        it("refuses a head over MAX_HEAD_SIZE or MAX_HEADERS", function()
            local many = { "HTTP/1.1 200 OK\r\n" }
            for i = 1, http.MAX_HEADERS + 1 do many[#many + 1] = "X-" .. i ..
                ": v\r\n" end
            local res, err = run({ url = "http://h/" }, table.concat(many))
            assert.is_nil(res)
            assert.are.equal("response head too large", err)
            res, err = run({ url = "http://h/" }, "HTTP/1.1 200 OK\r\nX: " ..
                           ("v"):rep(http.MAX_HEAD_SIZE) .. "\r\n\r\n")
            assert.is_nil(res)
            assert.are.equal("response head too large", err)
        end)
    end)
end)
