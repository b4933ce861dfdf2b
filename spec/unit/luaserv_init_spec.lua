-- lua/luaserv/init.lua: the Lua face of the C runtime, with luaserv.core
-- replaced by a recording stand-in (the pure parts: re-exports and log
-- formatting).
describe("luaserv (lua/luaserv/init.lua)", function()
    local luaserv, logged
    local core = {
        version = "test", worker = { id = 0 }, errors = { BAD_INPUT = 2 },
        listen = function() end, settings = function() end,
        connections = function() end, after = function() end,
        every = function() end, connect = function() end,
    }

    setup(function()
        core.log = function(level, msg) logged[#logged + 1] = { level, msg } end
        package.loaded["luaserv.core"] = core
        package.loaded["luaserv"] = nil
        luaserv = require "luaserv"
    end)
    teardown(function()
        package.loaded["luaserv.core"] = nil
        package.loaded["luaserv"] = nil
    end)
    before_each(function() logged = {} end)

    it("re-exports the runtime", function()
        assert.are.equal("test", luaserv._VERSION)
        for _, k in ipairs { "worker", "errors", "listen", "settings",
                             "connections", "after", "every", "connect" } do
            assert.are.equal(core[k], luaserv[k], k)
        end
    end)

    it("logs a message as it is when no arguments follow", function()
        luaserv.log("info", "100% done")
        assert.are.same({ { "info", "100% done" } }, logged)
    end)

    it("formats the message with the arguments after it", function()
        luaserv.log("warn", "conn %d: %s", 7, "slow")
        assert.are.same({ { "warn", "conn 7: slow" } }, logged)
    end)

    it("raises on a bad format", function()
        assert.has_error(function() luaserv.log("info", "%d", "x") end)
    end)
end)
