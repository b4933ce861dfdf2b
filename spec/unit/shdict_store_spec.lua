-- The shared dict store in C on its own (spec/unit/c/shdict_store.c, built
-- as shdict_store_test next to the luaserv binary): random operations
-- against a model, a small dict that keeps evicting, and a process that dies
-- holding the lock (the structure left sound, or damaged three ways).
local BIN = os.getenv("LUASERV_BIN") or "./build/luaserv"
local TEST = BIN:gsub("[^/]*$", "") .. "shdict_store_test"

describe("shared dict store", function()
    it("passes its C unit test", function()
        local f = io.open(TEST)
        assert(f, TEST .. " not found (build it with cmake)")
        f:close()
        local p = assert(io.popen(TEST .. " 2>&1"))
        local out = p:read("a")
        local ok, _, code = p:close()
        assert.is_true(ok and code == 0, out)
        assert.matches("\nok\n$", "\n" .. out)
        -- every recovery said what it found
        local n = 0
        for _ in out:gmatch("died holding its lock while changing it") do
            n = n + 1
        end
        assert.are.equal(4, n, out)
        assert.matches("block %d+ is lost%); rebuilt with the 100 sound keys", out)
    end)
end)
