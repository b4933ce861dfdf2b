-- nginx-lua peer of W8: one Redis GET over a pooled ngx.socket.tcp, RESP
-- written by hand (lua-resty-redis is not packaged), as luaserv's app does.
local sock = ngx.socket.tcp()
sock:settimeout(1000)
local ok, err = sock:connect("127.0.0.1", tonumber(ngx.var.redis_port))
if not ok then
    ngx.status = 502
    return ngx.say(err)
end
sock:send("*2\r\n$3\r\nGET\r\n$3\r\nkey\r\n")
local head = sock:receive()
local v = sock:receive(tonumber(head:sub(2)) + 2):sub(1, -3)
sock:setkeepalive(10000, 200)
ngx.header.content_length = #v
ngx.print(v)
