--- Drive a Lua protocol table the way luaserv's C side does (proto_lua.c):
-- bytes arrive in chunks, input() is asked about the head of what is
-- buffered, an announced length is waited for without asking again, and
-- each whole packet goes through decode(). For unit specs of the modules
-- under lua/luaserv/protocols/.
local _M = {}

--- Feed chunks (an array of strings) to protocol P.
-- @return messages (array of decoded values), err (nil, or the error text
-- input() gave, or "package too big"), calls (how often input() ran)
function _M.feed(P, chunks, max)
    max = max or math.maxinteger
    local buf, msgs, calls, want = "", {}, 0, 0
    for _, chunk in ipairs(chunks) do
        buf = buf .. chunk
        while #buf > 0 do
            if want == 0 then
                calls = calls + 1
                local n, err = P.input(buf, nil)
                if n == nil then
                    return msgs, err, calls
                end
                assert(math.type(n) == "integer" and n >= 0,
                       "input must return an integer >= 0")
                if n == 0 then
                    if #buf > max then return msgs, "package too big", calls end
                    break
                end
                if n > max then return msgs, "package too big", calls end
                want = n
            end
            if #buf < want then
                break
            end
            local packet = buf:sub(1, want)
            buf = buf:sub(want + 1)
            want = 0
            msgs[#msgs + 1] = P.decode and P.decode(packet, nil) or packet
        end
    end
    return msgs, nil, calls
end

--- Every byte as its own chunk.
function _M.bytes(s)
    local t = {}
    for i = 1, #s do t[i] = s:sub(i, i) end
    return t
end

return _M
