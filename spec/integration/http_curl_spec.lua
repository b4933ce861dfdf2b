-- http:// with a real client: curl (keep-alive, HTTP/1.0, chunked upload,
-- 100-continue, HEAD, streaming), and the shipped http examples.
local server = require "helpers.server"

local APP = "spec/fixtures/apps/http_app.lua"

-- Run curl with the given arguments; returns stdout, and stderr (with -v).
local function curl(args)
    local err = os.tmpname()
    local out = server.capture("curl -sS --max-time 10 " .. args .. " 2>" ..
                               server.shquote(err))
    local e = server.readfile(err) or ""
    os.remove(err)
    return out, e
end

local function tmpfile(content)
    local name = os.tmpname()
    local f = assert(io.open(name, "wb"))
    f:write(content)
    f:close()
    finally(function() os.remove(name) end)
    return name
end

describe("http:// with curl", function()
    local srv, base
    setup(function()
        srv = server.start(APP)
        base = "http://127.0.0.1:" .. srv.port
    end)
    teardown(function()
        if srv then srv:stop() end
    end)

    it("answers a GET with 200, text/html, Date and Content-Length",
    function()
        local out = curl("-i " .. base .. "/")
        assert.truthy(out:find("^HTTP/1.1 200 OK\r\n"))
        assert.truthy(out:find("\r\nContent-Type: text/html; charset=utf-8\r\n",
                               1, true))
        assert.truthy(out:find("\r\nContent-Length: 5\r\n", 1, true))
        assert.truthy(out:find("\r\nDate: %a%a%a, %d%d %a%a%a %d%d%d%d " ..
                               "%d%d:%d%d:%d%d GMT\r\n"))
        assert.truthy(out:find("\r\n\r\nhello$"))
    end)

    it("keeps the connection alive between requests", function()
        local out, err = curl("-v " .. base .. "/ " .. base .. "/echo " ..
                              base .. "/")
        assert.truthy(out:find("^hello"))
        local reused = select(2, err:gsub("Re%-using existing connection", ""))
        assert.are.equal(2, reused)
    end)

    it("closes after an HTTP/1.0 request, keeps 1.0 keep-alive open",
    function()
        local out, err = curl("-0 -v " .. base .. "/echo " .. base .. "/")
        assert.truthy(out:find("version=1.0\n", 1, true))
        assert.truthy(err:find("< Connection: close", 1, true))
        assert.falsy(err:find("Re-using", 1, true))
        out, err = curl("-0 -v -H 'Connection: keep-alive' " .. base ..
                        "/ " .. base .. "/")
        assert.are.equal("hellohello", out)
        assert.truthy(err:find("< Connection: keep-alive", 1, true))
        assert.truthy(err:find("Re-using", 1, true))
    end)

    it("passes method, path, decoded query, headers and body", function()
        local out = curl("-H 'X-Test: yes' -H 'X-Test: again' " ..
                         "--data-binary 'a=1&b=2' '" .. base ..
                         "/echo?q=a%20b&list=1&list=2&flag&plus=x+y'")
        assert.truthy(out:find("method=POST\n", 1, true))
        assert.truthy(out:find("path=/echo\n", 1, true))
        assert.truthy(out:find("q:q=a b\n", 1, true))
        assert.truthy(out:find("q:list=[1,2]\n", 1, true))
        assert.truthy(out:find("q:flag=true\n", 1, true))
        assert.truthy(out:find("q:plus=x y\n", 1, true))
        assert.truthy(out:find("h:x-test=yes, again", 1, true))
        assert.truthy(out:find("body=a=1&b=2\n", 1, true))
        assert.truthy(out:find("version=1.1\n", 1, true))
    end)

    it("takes a chunked upload", function()
        local body = string.rep("chunked upload ", 4000) -- < maxBodySize
        local f = tmpfile(body)
        local out, err = curl("-v -H 'Transfer-Encoding: chunked' " ..
                              "--data-binary @" .. f .. " " .. base .. "/size")
        assert.truthy(err:find("> Transfer-Encoding: chunked", 1, true))
        assert.are.equal(tostring(#body), out)
    end)

    it("answers Expect: 100-continue", function()
        local body = string.rep("x", 20000)
        local f = tmpfile(body)
        local out, err = curl("-v -H 'Expect: 100-continue' " ..
                              "--data-binary @" .. f .. " " .. base .. "/size")
        assert.truthy(err:find("< HTTP/1.1 100 Continue", 1, true))
        assert.are.equal(tostring(#body), out)
    end)

    it("answers HEAD with the head only", function()
        local out, err = curl("-v -I " .. base .. "/")
        assert.truthy(out:find("^HTTP/1.1 200 OK"))
        assert.truthy(out:find("Content-Length: 5", 1, true))
        assert.falsy(out:find("hello", 1, true))
        assert.falsy(err:find("Excess found", 1, true))
    end)

    it("receives a streamed (chunked) response", function()
        local out, err = curl("-v -N " .. base .. "/stream?n=4")
        assert.truthy(err:find("< Transfer-Encoding: chunked", 1, true))
        assert.are.equal("first;part1;part2;part3;part4;last", out)
    end)

    it("receives a response sent later from a timer", function()
        assert.are.equal("later 3", curl("'" .. base .. "/later?ms=100&id=3'"))
    end)

    it("gets app headers, repeated ones as several lines, and no " ..
       "app-set Content-Length", function()
        local out = curl("-i " .. base .. "/headers")
        assert.truthy(out:find("\r\nX-One: 1\r\n", 1, true))
        assert.truthy(out:find("\r\nX-Num: 42\r\n", 1, true))
        assert.truthy(out:find("\r\nSet-Cookie: a=1\r\n", 1, true))
        assert.truthy(out:find("\r\nSet-Cookie: b=2\r\n", 1, true))
        assert.truthy(out:find("\r\nContent-Length: 1\r\n", 1, true))
        assert.falsy(out:find("999", 1, true))
    end)

    it("refuses a response header that would split the response", function()
        local out = curl(base .. "/bad-header")
        assert.are.equal("bad value for header 'X-Bad' (CR, LF or NUL)", out)
    end)
end)

describe("http examples", function()
    after_each(function() server.cleanup() end)

    it("examples/http_hello.lua says hello", function()
        local srv = server.start("examples/http_hello.lua",
                                 { wait_workers = 2 })
        local base = "http://127.0.0.1:" .. srv.port
        assert.are.equal("Hello, World!", curl(base .. "/"))
        assert.are.equal("Hello, World!", curl(base .. "/any/path?x=1"))
    end)

    it("examples/http_api.lua routes on method and path with JSON",
    function()
        local srv = server.start("examples/http_api.lua")
        local base = "http://127.0.0.1:" .. srv.port
        assert.are.equal("[]", curl(base .. "/items"))
        local out = curl("-i -d '{\"name\":\"milk\"}' " .. base .. "/items")
        assert.truthy(out:find("^HTTP/1.1 201 Created"))
        assert.truthy(out:find("\r\nLocation: /items/1\r\n", 1, true))
        assert.truthy(out:find("\r\nContent-Type: application/json\r\n", 1,
                               true))
        local cjson = require "cjson"
        local item = cjson.decode((curl(base .. "/items/1")))
        assert.are.same({ id = 1, name = "milk" }, item)
        assert.are.same({ { id = 1, name = "milk" } },
                        cjson.decode((curl(base .. "/items"))))
        out = curl("-i -X PUT " .. base .. "/items/1")
        assert.truthy(out:find("^HTTP/1.1 405 "))
        assert.truthy(out:find("\r\nAllow: GET, DELETE\r\n", 1, true))
        out = curl("-i -d 'not json' " .. base .. "/items")
        assert.truthy(out:find("^HTTP/1.1 400 "))
        out = curl("-i -X DELETE " .. base .. "/items/1")
        assert.truthy(out:find("^HTTP/1.1 204 "))
        out = curl("-i " .. base .. "/items/1")
        assert.truthy(out:find("^HTTP/1.1 404 "))
        out = curl("-i " .. base .. "/nowhere")
        assert.truthy(out:find("^HTTP/1.1 404 "))
    end)
end)
