-- luaserv.protocols.resp: input/decode/encode called directly with whole,
-- split, batched and malformed buffers.
local resp = require "luaserv.protocols.resp"
local driver = require "helpers.proto_driver"

local SET = "*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$5\r\nhello\r\n"

describe("luaserv.protocols.resp", function()
    describe("input", function()
        it("delimits each kind of value", function()
            for _, v in ipairs {
                "+OK\r\n", "-ERR no\r\n", ":42\r\n", ":-7\r\n", "$0\r\n\r\n",
                "$-1\r\n", "*-1\r\n", "*0\r\n", SET,
                "*2\r\n*1\r\n:1\r\n$-1\r\n", "PING\r\n", "GET k\n",
            } do
                assert.are.equal(#v, resp.input(v .. "+next\r\n"), v)
            end
        end)

        it("answers 0 until a value is whole", function()
            for i = 0, #SET - 1 do
                local n = resp.input(SET:sub(1, i))
                -- once the last bulk header is in, the exact size is known
                if i >= #"*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$5\r\n" then
                    assert.are.equal(#SET, n, i)
                else
                    assert.are.equal(0, n, i)
                end
            end
            assert.are.equal(0, resp.input("+OK\r"))
            assert.are.equal(0, resp.input("PING"))
        end)

        it("announces a trailing bulk string, so a big value is not rescanned",
        function()
            local big = ("v"):rep(100000)
            local wire = resp.encode { "SET", "k", big }
            local chunks = {}
            for i = 1, #wire, 1000 do chunks[#chunks + 1] = wire:sub(i, i + 999) end
            local msgs, err, calls = driver.feed(resp, chunks)
            assert.is_nil(err)
            assert.are.same({ { "SET", "k", big } }, msgs)
            assert.are.equal(1, calls)
        end)

        it("refuses malformed input", function()
            for _, case in ipairs {
                { "?x\r\n", nil },               -- inline, fine
                { "$abc\r\n", "bad bulk string length" },
                { "$-2\r\n", "bad bulk string length" },
                { ":1x\r\n", "bad integer" },
                { "*x\r\n", "bad array length" },
                { "$3\r\nabcde\r\n", "bulk string not followed by CRLF" },
                { "+OK\rX", "CR without LF" },
                { "*1\r\n!\r\n", "bad type byte" },
                { "*99999999\r\n", "elements" },
                { ("*1\r\n"):rep(9) .. ":1\r\n", "nested too deep" },
            } do
                local n, err = resp.input(case[1])
                if case[2] then
                    assert.is_nil(n, case[1])
                    assert.matches(case[2], err, 1, true)
                else
                    assert.is_true(n > 0)
                end
            end
            local n, err = resp.input(("x"):rep(resp.MAX_INLINE + 1))
            assert.is_nil(n)
            assert.matches("inline command too long", err)
        end)
    end)

    describe("decode", function()
        it("gives Lua values", function()
            assert.are.same({ "SET", "key", "hello" }, resp.decode(SET))
            assert.are.equal("OK", resp.decode("+OK\r\n"))
            assert.are.equal(42, resp.decode(":42\r\n"))
            assert.are.equal(resp.null, resp.decode("$-1\r\n"))
            assert.are.equal(resp.null, resp.decode("*-1\r\n"))
            assert.are.equal("", resp.decode("$0\r\n\r\n"))
            assert.are.equal("a\r\nb", resp.decode("$4\r\na\r\nb\r\n"))
            local e = resp.decode("-ERR wrong\r\n")
            assert.is_true(resp.is_error(e))
            assert.are.equal("ERR wrong", e.err)
            assert.are.same({ { 1, 2 }, resp.null, {} },
                            resp.decode("*3\r\n*2\r\n:1\r\n:2\r\n$-1\r\n*0\r\n"))
            assert.are.same({ "GET", "k" }, resp.decode("GET  k\r\n"))
        end)

        it("decodes whole, split, byte-by-byte and batched streams", function()
            local wire = SET .. "PING\r\n" .. resp.encode { "DEL", "a", "b" } ..
                         ":5\r\n"
            local want = { { "SET", "key", "hello" }, { "PING" },
                           { "DEL", "a", "b" }, 5 }
            assert.are.same(want, (driver.feed(resp, { wire })))
            assert.are.same(want, (driver.feed(resp, driver.bytes(wire))))
            assert.are.same(want, (driver.feed(resp,
                { wire:sub(1, 7), wire:sub(8, 30), wire:sub(31) })))
            local msgs, err = driver.feed(resp, { SET .. "$x\r\n" .. SET })
            assert.are.same({ { "SET", "key", "hello" } }, msgs)
            assert.matches("bad bulk string length", err)
        end)
    end)

    describe("encode", function()
        it("writes each kind of value", function()
            assert.are.equal("$5\r\nhello\r\n", resp.encode("hello"))
            assert.are.equal(":-3\r\n", resp.encode(-3))
            assert.are.equal("$3\r\n1.5\r\n", resp.encode(1.5))
            assert.are.equal("$-1\r\n", resp.encode(resp.null))
            assert.are.equal("+OK\r\n", resp.encode(resp.status("OK")))
            assert.are.equal("-ERR x\r\n", resp.encode(resp.error("ERR x")))
            assert.are.equal("*3\r\n$1\r\na\r\n:1\r\n$-1\r\n",
                             resp.encode { "a", 1, false })
            assert.are.equal("*0\r\n", resp.encode {})
        end)

        it("round-trips through decode", function()
            local v = { "x", 7, { "nested", { "deeper" } }, resp.null, "" }
            assert.are.same(v, resp.decode(resp.encode(v)))
        end)

        it("refuses what RESP cannot carry", function()
            assert.has_error(function() resp.encode(resp.status("a\r\nb")) end)
            assert.has_error(function() resp.encode(resp.error("a\nb")) end)
            assert.has_error(function() resp.encode(print) end)
            assert.has_error(function() resp.encode(true) end)
            local deep = {}
            for _ = 1, 10 do deep = { deep } end
            assert.has_error(function() resp.encode(deep) end)
        end)
    end)
end)
