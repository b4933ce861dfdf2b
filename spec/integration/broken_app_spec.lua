-- A broken application script stops `luaserv app.lua` at once with exit 1,
-- the Lua error on stderr and no process left behind.
local server = require "helpers.server"

local cases = {
    { app = "broken_syntax.lua", err = "broken_syntax.lua:%d+:" },
    { app = "broken_runtime.lua",
      err = "broken_runtime.lua:%d+: top%-level failure in broken_runtime" },
    { app = "bad_option.lua", err = "count" },
    { app = "bad_address.lua", err = "bogus" },
}

describe("a broken app", function()
    for _, case in ipairs(cases) do
        it(case.app .. " makes start exit 1 with the error on stderr",
        function()
            local r = server.run({ "spec/fixtures/apps/" .. case.app })
            assert.are.equal(1, r.code, "exit code; stderr:\n" .. r.stderr)
            assert.is_truthy(r.stderr:find(case.err),
                "stderr lacks " .. case.err .. ":\n" .. r.stderr)
            assert.are.same({}, r.leftover, "processes left running")
            assert.is_true(server.port_free(r.port))
            assert.is_nil(server.scan_log(r.stderr, { "." }))  -- no sanitizer
        end)

        it(case.app .. " makes check exit 1 with the error on stderr",
        function()
            local r = server.run({ "spec/fixtures/apps/" .. case.app, "check" })
            assert.are.equal(1, r.code, "exit code; stderr:\n" .. r.stderr)
            assert.is_truthy(r.stderr:find(case.err),
                "stderr lacks " .. case.err .. ":\n" .. r.stderr)
            assert.are.same({}, r.leftover)
        end)
    end

    it("start of a missing file exits 1", function()
        local r = server.run({ "spec/fixtures/apps/does_not_exist.lua" })
        assert.are.equal(1, r.code, r.stderr)
        assert.is_truthy(r.stderr:find("does_not_exist.lua", 1, true), r.stderr)
        assert.are.same({}, r.leftover)
    end)
end)
