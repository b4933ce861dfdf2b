-- Command line: check, usage errors, help and version.
local server = require "helpers.server"
local socket = require "socket"

describe("luaserv check", function()
    it("exits 0 and prints a summary for a good app", function()
        local r = server.run({ "spec/fixtures/apps/echo_text.lua", "check" })
        assert.are.equal(0, r.code, r.stderr)
        assert.is_truthy(r.stdout:find("%S"), "empty summary")
        assert.is_truthy(r.stdout:find("echo", 1, true) or
                         r.stdout:find(tostring(r.port), 1, true),
            "summary names neither listener nor port:\n" .. r.stdout)
        assert.are.same({}, r.leftover)
        assert.is_nil(server.scan_log(r.stderr))
    end)

    it("does not bind the app's port", function()
        local hold = assert(socket.tcp())
        assert(hold:bind("127.0.0.1", 0))
        assert(hold:listen(8))
        local _, port = hold:getsockname()
        finally(function() hold:close() end)
        local r = server.run({ "spec/fixtures/apps/echo_text.lua", "check" },
            { port = tonumber(port) })
        assert.are.equal(0, r.code, r.stderr)
    end)

    it("checks examples/echo.lua", function()
        local r = server.run({ "examples/echo.lua", "check" })
        assert.are.equal(0, r.code, r.stderr)
    end)
end)

describe("usage errors exit 2", function()
    local cases = {
        { name = "no arguments", args = {} },
        { name = "an unknown command",
          args = { "spec/fixtures/apps/echo_text.lua", "frobnicate" } },
        { name = "an unknown option",
          args = { "--no-such-option", "spec/fixtures/apps/echo_text.lua" } },
        { name = "-w without a number",
          args = { "-w" } },
        { name = "-w with a non-number",
          args = { "-w", "many", "spec/fixtures/apps/echo_text.lua" } },
    }
    for _, case in ipairs(cases) do
        it("for " .. case.name, function()
            local r = server.run(case.args, { timeout = 10 })
            assert.are.equal(2, r.code,
                "stdout:\n" .. r.stdout .. "\nstderr:\n" .. r.stderr)
            assert.is_truthy((r.stderr .. r.stdout):find("%S"),
                "no usage message")
            assert.are.same({}, r.leftover)
        end)
    end
end)

describe("help and version", function()
    it("-h exits 0 and prints usage", function()
        local r = server.run({ "-h" }, { timeout = 10 })
        assert.are.equal(0, r.code, r.stderr)
        assert.is_truthy((r.stdout .. r.stderr):find("check", 1, true))
    end)

    it("-v exits 0 and prints a version", function()
        local r = server.run({ "-v" }, { timeout = 10 })
        assert.are.equal(0, r.code, r.stderr)
        assert.is_truthy((r.stdout .. r.stderr):find("%d+%.%d+"))
        -- and the Lua it runs: "(Lua 5.4.4)" or "(LuaJIT 2.1.0-beta3)"
        assert.is_truthy(r.stdout:find("%(Lua[%w]* %d+%.%d+"), r.stdout)
    end)
end)
