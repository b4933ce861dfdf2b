--- Debian's nginx for integration specs: a config written to a temp
-- directory, one process (master_process off) in the foreground on a free
-- loopback port, stopped by pid.
--
--     local nginx = require "helpers.nginx"
--     local ng = nginx.start { locations = [[ location / { return 200; } ]],
--                              files = { ["www/a.txt"] = "..." } }
--     ng.port, ng.dir, ng:access_log()     -- "$connection $connection_requests $request" lines
--     ng:stop()

local server = require "helpers.server"
local external = require "helpers.external"
local socket = require "socket"

local _M = {}

_M.BIN = os.getenv("LUASERV_NGINX") or
    (external.have("nginx") and "nginx" or "/usr/sbin/nginx")

local Nginx = {}
Nginx.__index = Nginx

function _M.available()
    local f = io.open(_M.BIN, "rb")
    if f then f:close() return true end
    return external.have(_M.BIN)
end

local CONF = [[
daemon off;
master_process off;
worker_processes 1;
pid %s/nginx.pid;
error_log %s/error.log info;
events { worker_connections 128; }
http {
    log_format conn '$connection $connection_requests $request';
    access_log %s/access.log conn;
    client_body_temp_path %s/tmp/body;
    proxy_temp_path %s/tmp/proxy;
    fastcgi_temp_path %s/tmp/fastcgi;
    uwsgi_temp_path %s/tmp/uwsgi;
    scgi_temp_path %s/tmp/scgi;
    keepalive_timeout 30s;
    server {
        listen 127.0.0.1:%d;
        server_name localhost;
        root %s/www;
%s
    }
}
]]

--- The access log as lines {conn = n, requests = n, request = "GET / HTTP/1.1"}.
function Nginx:access_log()
    local t = {}
    local text = server.readfile(self.dir .. "/access.log") or ""
    for c, n, r in text:gmatch("(%d+) (%d+) ([^\n]*)\n") do
        t[#t + 1] = { conn = tonumber(c), requests = tonumber(n), request = r }
    end
    return t
end

function Nginx:error_log()
    return server.readfile(self.dir .. "/error.log") or ""
end

function Nginx:stop()
    if self.stopped then return end
    self.stopped = true
    local polite = external.stop(self.pid)
    local log = self:error_log()
    if not polite then
        error("nginx " .. self.pid .. " did not stop on SIGTERM; killed\n" ..
              "--- error.log ---\n" .. server.tail(log), 2)
    end
    external.rmdir(self.dir)
end

--- Start nginx. opts.locations: the server block's body (nginx syntax);
-- opts.files: path (relative to the temp dir; "www/..." is the root) ->
-- content. Returns the handle.
function _M.start(opts)
    opts = opts or {}
    assert(_M.available(), "nginx is not installed (apt-get install nginx)")
    local dir = external.tmpdir("nginx")
    local port = opts.port or server.free_port()
    os.execute("mkdir -p " .. server.shquote(dir .. "/tmp") .. " " ..
               server.shquote(dir .. "/www"))
    for path, content in pairs(opts.files or {}) do
        local sub = path:match("^(.*)/[^/]+$")
        if sub then os.execute("mkdir -p " .. server.shquote(dir .. "/" .. sub)) end
        local f = assert(io.open(dir .. "/" .. path, "wb"))
        f:write(content)
        f:close()
    end
    local conf = string.format(CONF, dir, dir, dir, dir, dir, dir, dir, dir,
                               port, dir, opts.locations or "")
    local f = assert(io.open(dir .. "/nginx.conf", "wb"))
    f:write(conf)
    f:close()
    local self = setmetatable({ dir = dir, port = port }, Nginx)
    self.pid = external.spawn({ _M.BIN, "-p", dir .. "/", "-c",
                                dir .. "/nginx.conf", "-e",
                                dir .. "/error.log" }, dir .. "/stdout.log")
    local up = server.wait_until(function()
        if not server.alive(self.pid) then return "exited" end
        local c = socket.tcp()
        c:settimeout(0.5)
        local ok = c:connect("127.0.0.1", port)
        c:close()
        if ok then return "ok" end
    end, server.START_TIMEOUT, 0.05)
    if up ~= "ok" then
        local log = self:error_log() ..
                    (server.readfile(dir .. "/stdout.log") or "")
        external.stop(self.pid, 2)
        external.rmdir(dir)
        error("nginx on 127.0.0.1:" .. port .. " " ..
              (up or "did not accept within " .. server.START_TIMEOUT .. "s") ..
              "\n--- log ---\n" .. server.tail(log), 2)
    end
    return self
end

return _M
