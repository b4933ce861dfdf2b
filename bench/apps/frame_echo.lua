-- bench: frame:// echo (W6: a 16 MB message arriving in small pieces).
-- Port from BENCH_PORT. Limits raised so that a 16 MB message fits.
local luaserv = require "luaserv"

local s = luaserv.listen("frame://127.0.0.1:" .. (os.getenv("BENCH_PORT") or "19001"), {
    count = 1, name = "frame_echo",
    maxPackageSize = 32 * 1024 * 1024,
    maxSendBufferSize = 64 * 1024 * 1024,
})

function s.onMessage(conn, msg)
    conn:send(msg)
end
