-- luaserv.protocols.length: input/decode/encode called directly with
-- whole, split, batched and malformed buffers.
local length = require "luaserv.protocols.length"
local driver = require "helpers.proto_driver"

describe("luaserv.protocols.length", function()
    it("is the 4-byte big-endian form, header not counted", function()
        assert.are.equal(4, length.size)
        assert.are.equal("big", length.endian)
        assert.is_false(length.includesHeader)
        assert.are.equal("\0\0\0\5hello", length.encode("hello"))
        assert.are.equal(9, length.input("\0\0\0\5hello", nil))
        assert.are.equal("hello", length.decode("\0\0\0\5hello", nil))
    end)

    it("needs the whole header before it names a length", function()
        assert.are.equal(0, length.input(""))
        assert.are.equal(0, length.input("\0\0\0"))
        -- the header is enough to announce the whole packet
        assert.are.equal(1004, length.input("\0\0\3\232abc"))
    end)

    it("round-trips whole, split, byte-by-byte and batched input", function()
        local msgs = { "", "a", ("x"):rep(300), "\0\1\2\255" }
        local wire = {}
        for i, m in ipairs(msgs) do wire[i] = length.encode(m) end
        local all = table.concat(wire)
        assert.are.same(msgs, (driver.feed(length, { all })))
        assert.are.same(msgs, (driver.feed(length, driver.bytes(all))))
        assert.are.same(msgs, (driver.feed(length,
            { all:sub(1, 3), all:sub(4, 100), all:sub(101) })))
        assert.are.same(msgs, (driver.feed(length, wire)))
    end)

    it("asks input() once per packet even when it arrives in pieces",
    function()
        local wire = length.encode(("y"):rep(1000))
        local msgs, err, calls = driver.feed(length, driver.bytes(wire))
        assert.is_nil(err)
        assert.are.equal(1, #msgs)
        -- 3 calls before the header is whole, then one that announces
        assert.are.equal(4, calls)
    end)

    it("makes other layouts: sizes, little endian, header included",
    function()
        local p = length.new { size = 2, endian = "little",
                               includesHeader = true }
        assert.are.equal("\7\0hello", p.encode("hello"))
        assert.are.equal(7, p.input("\7\0hello"))
        assert.are.equal("hello", p.decode("\7\0hello"))
        local one = length.new { size = 1 }
        assert.are.equal("\3abc", one.encode("abc"))
        local eight = length.new { size = 8 }
        assert.are.equal(("\0"):rep(7) .. "\2hi", eight.encode("hi"))
        assert.are.same({ "hi", "yo" }, (driver.feed(eight,
            driver.bytes(eight.encode("hi") .. eight.encode("yo")))))
    end)

    it("rejects lengths that cannot be", function()
        local p = length.new { size = 2, includesHeader = true }
        local n, err = p.input("\0\1x")
        assert.is_nil(n)
        assert.matches("smaller than its header", err)
        local eight = length.new { size = 8 }
        n, err = eight.input("\255\255\255\255\255\255\255\255")
        assert.is_nil(n)
        assert.matches("2^63", err, 1, true)
        local msgs, ferr = driver.feed(p, { p.encode("ok") .. "\0\0" })
        assert.are.same({ "ok" }, msgs)
        assert.matches("smaller than its header", ferr)
    end)

    it("leaves oversized packets to maxPackageSize", function()
        local _, err = driver.feed(length, { "\0\1\0\0" }, 1024)
        assert.are.equal("package too big", err)
    end)

    it("refuses what does not fit, and bad options", function()
        local one = length.new { size = 1 }
        assert.has_error(function() one.encode(("z"):rep(256)) end,
            "length protocol: message of 256 bytes does not fit a 1-byte length")
        assert.has_error(function() length.encode({}) end)
        assert.are.equal("\0\0\0\2" .. "24", length.encode(24))
        assert.has_error(function() length.new { size = 3 } end)
        assert.has_error(function() length.new { endian = "middle" } end)
    end)
end)
