-- luaserv.encode / luaserv.decode (JSON through lua-cjson) in a worker.
local server = require "helpers.server"
local cjson = require "cjson"
local http = require "socket.http"
local ltn12 = require "ltn12"

local function req(port, path, body)
    local out = {}
    local _, code = http.request {
        url = "http://127.0.0.1:" .. port .. path,
        method = body and "POST" or "GET",
        source = body and ltn12.source.string(body) or nil,
        headers = body and { ["content-length"] = #body } or nil,
        sink = ltn12.sink.table(out),
    }
    return code, table.concat(out)
end

describe("luaserv.encode / decode", function()
    local srv
    setup(function() srv = server.start("spec/fixtures/apps/json.lua") end)
    teardown(function() server.cleanup() end)

    it("round-trips a table", function()
        local code, body = req(srv.port, "/echo",
            '{"list":[1,2,3],"name":"x","ok":true,"nested":{"k":1.5}}')
        assert.are.equal(200, code, body)
        local t = cjson.decode(body)
        assert.are.equal(3, t.n)
        assert.are.same({ 1, 2, 3 }, t.got.list)
        assert.are.equal("x", t.got.name)
        assert.is_true(t.got.ok)
        assert.are.equal(1.5, t.got.nested.k)
    end)

    it("gives nil, err for text that is not JSON and for a function",
    function()
        local _, body = req(srv.port, "/bad")
        assert.is_truthy(body:find("^nil Expected"), body)
        _, body = req(srv.port, "/fn")
        assert.is_truthy(body:find("^nil Cannot serialise function"), body)
    end)

    it("maps JSON null to luaserv.null and back", function()
        local _, body = req(srv.port, "/null")
        assert.are.equal('true {"b":null}', body)
    end)
end)
