-- luaserv.compat: the 5.3/5.4 library functions a LuaJIT build adds. The
-- specs run on Lua 5.4, so the module is loaded into an environment whose
-- string, math, table and utf8 lack them, and what it adds is compared with
-- 5.4's own functions.

local function load_compat()
    local env = {}
    env._G = env
    env.string = { char = string.char, byte = string.byte, sub = string.sub,
                   find = string.find, rep = string.rep,
                   format = string.format }
    env.math = { floor = math.floor, huge = math.huge }
    env.table = { concat = table.concat }
    env.unpack = table.unpack -- LuaJIT's global
    setmetatable(env, { __index = function(_, k)
        if k ~= "utf8" then return _G[k] end
    end })
    local chunk = assert(loadfile("lua/luaserv/compat.lua", "t", env))
    chunk()
    return env
end

local C = load_compat()

local function hex(s)
    return (s:gsub(".", function(c) return ("%02x"):format(c:byte()) end))
end

describe("luaserv.compat", function()
    describe("string.pack / string.unpack", function()
        local cases = {
            { ">I2", 258 }, { "<I2", 258 }, { "<I4", 1 }, { ">i4", -2 },
            { ">I8", 1000 }, { "<i8", -1 }, { ">i8", -123456789 },
            { ">I1", 200 }, { "b", -128 }, { "B", 255 }, { "<i3", -5 },
            { "I", 7 }, { "h", -300 }, { "H", 65535 }, { ">j", 123456789012 },
            { ">s2", "hello" }, { "<s4", "" }, { "s1", "x" }, { "z", "ab" },
            { ">I2I4", 1, 2 }, { "<i2 x I1", -2, 9 }, { "=I2", 5 },
        }
        for _, c in ipairs(cases) do
            it("packs and unpacks " .. c[1] .. " as 5.4 does", function()
                local want = string.pack(c[1], table.unpack(c, 2))
                local got = C.string.pack(c[1], table.unpack(c, 2))
                assert.are.equal(hex(want), hex(got))
                assert.are.same({ string.unpack(c[1], want) },
                                { C.string.unpack(c[1], want) })
            end)
        end

        it("unpacks from a position", function()
            assert.are.same({ 5, 5 }, { C.string.unpack(">I2", "xx\0\5", 3) })
            assert.are.same({ 1, 2, 5 },
                            { C.string.unpack(">I2I2", "\0\1\0\2") })
        end)

        it("raises as 5.4 does on overflow, fractions, short data", function()
            assert.has_error(function() C.string.pack(">I2", 70000) end,
                "bad argument #2 to 'string.pack' (unsigned overflow)")
            assert.has_error(function() C.string.pack(">i1", 128) end,
                "bad argument #2 to 'string.pack' (integer overflow)")
            assert.has_error(function() C.string.pack(">I2", 1.5) end,
                "bad argument #2 to 'string.pack' (number has no integer " ..
                "representation)")
            assert.has_error(function() C.string.unpack(">I4", "ab") end,
                "bad argument #2 to 'string.unpack' (data string too short)")
            assert.has_error(function() C.string.pack("d", 1.5) end,
                "bad argument #1 to 'string.pack' (format option 'd' is " ..
                "not supported by luaserv's LuaJIT build)")
        end)

        it("gives packsize of fixed formats", function()
            assert.are.equal(string.packsize(">I2i4B"),
                             C.string.packsize(">I2i4B"))
        end)
    end)

    describe("utf8", function()
        local strings = { "hello", "h\xc3\xa9llo", "\xe2\x82\xac",
            "\xf0\x9f\x98\x80", "\xff", "\xc3", "\xed\xa0\x80",
            "\xc0\xaf", "\xf4\x90\x80\x80", "" }
        for i, s in ipairs(strings) do
            it("len of string " .. i .. " as 5.4's strict len", function()
                assert.are.same({ utf8.len(s) }, { C.utf8.len(s) })
            end)
        end

        it("char, codepoint and codes as 5.4", function()
            assert.are.equal(utf8.char(72, 233, 0x20AC, 0x1F600),
                             C.utf8.char(72, 233, 0x20AC, 0x1F600))
            local s = "h\xc3\xa9\xe2\x82\xac"
            assert.are.same({ utf8.codepoint(s, 1, -1) },
                            { C.utf8.codepoint(s, 1, -1) })
            local a, b = {}, {}
            for p, c in utf8.codes(s) do a[#a + 1] = p .. ":" .. c end
            for p, c in C.utf8.codes(s) do b[#b + 1] = p .. ":" .. c end
            assert.are.same(a, b)
            assert.are.equal(utf8.charpattern, C.utf8.charpattern)
        end)
    end)

    describe("math and table", function()
        it("math.type says integer for an integral number", function()
            assert.are.equal("integer", C.math.type(3))
            assert.are.equal("float", C.math.type(2.5))
            assert.is_nil(C.math.type("3"))
            assert.are.equal("float", C.math.type(math.huge))
        end)

        it("math.tointeger as 5.4 for numbers and numeric strings", function()
            assert.are.equal(3, C.math.tointeger(3))
            assert.are.equal(8, C.math.tointeger("8"))
            assert.is_nil(C.math.tointeger(2.5))
            assert.is_nil(C.math.tointeger("x"))
        end)

        it("math.maxinteger is the largest integer a double counts to",
        function()
            assert.are.equal(2 ^ 53 - 1, C.math.maxinteger)
            assert.are.equal(-(2 ^ 53 - 1), C.math.mininteger)
        end)

        it("table.pack and table.unpack", function()
            local t = C.table.pack(1, nil, 3)
            assert.are.equal(3, t.n)
            assert.are.same({ 1, 2 }, { C.table.unpack({ 1, 2 }) })
        end)
    end)
end)
