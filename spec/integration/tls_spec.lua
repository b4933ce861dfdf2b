-- TLS listeners (the ssl option, https://, wss://) with real clients: curl,
-- openssl s_client (TLS 1.2, 1.3, SNI, resumption), python3's ssl and
-- websockets; bad input (plain HTTP, garbage, half a handshake, a client
-- that says nothing); certificates re-read by a reload, and broken ones
-- refused while the old generation serves. The certificates are made here,
-- with the openssl command, in a directory of the test's own.
local server = require "helpers.server"
local life = require "integration.lifecycle"
local socket = require "socket"

local shquote = server.shquote
local APP = "tls.lua"

-- Run a shell command; its output (stdout and stderr) and exit code.
local function run(cmd)
    local p = io.popen("(" .. cmd .. ") 2>&1; echo \"rc=$?\"", "r")
    local out = p:read("a")
    p:close()
    local code = tonumber(out:match("rc=(%d+)\n?$"))
    return out:gsub("rc=%d+\n?$", ""), code
end

-- A self-signed certificate (RSA, or EC with ec = true) for name.
local function make_cert(dir, crt, key, name, ec)
    local alg = ec and "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1"
        or "-newkey rsa:2048"
    local san = name == "localhost" and "DNS:localhost,IP:127.0.0.1"
        or "DNS:" .. name
    local out, code = run(string.format(
        "cd %s && openssl req -x509 %s -nodes -keyout %s -out %s -days 2 " ..
        "-subj /CN=%s -addext subjectAltName=%s", shquote(dir), alg, key, crt,
        name, san))
    assert(code == 0, "openssl req: " .. out)
end

local function setup(opts)
    opts = opts or {}
    local dir = life.tmpdir()
    life.copy_fixtures(dir, APP)
    make_cert(dir, "cert.pem", "key.pem", "localhost")
    make_cert(dir, "b.crt", "b.key", "b.test", true)
    local ports = {}
    for i = 1, 7 do ports[i] = server.free_port() end
    local srv = life.start(dir, APP, {
        port = ports[1], wait_workers = 7,
        env = { LUASERV_TEST_PORT2 = tostring(ports[2]),
                LUASERV_TEST_PORT3 = tostring(ports[3]),
                LUASERV_TEST_PORT4 = tostring(ports[4]),
                LUASERV_TEST_PORT5 = tostring(ports[5]),
                LUASERV_TEST_PORT6 = tostring(ports[6]),
                LUASERV_TEST_PORT7 = tostring(ports[7]) },
        reload = opts.reload,
    })
    srv.ports = ports
    return srv, dir
end

local function curl(srv, path, extra)
    return run(string.format("curl -sS -m 20 --cacert %s %s " ..
        "https://localhost:%d%s", shquote(srv.ca or srv.dir .. "/cert.pem"),
        extra or "", srv.port, path))
end

-- openssl s_client against port with args, stdin from input; its output.
local function s_client(srv, port, args, input)
    return run(string.format("printf %%s %s | timeout 20 openssl s_client " ..
        "-connect 127.0.0.1:%d -CAfile %s %s", shquote(input or ""), port,
        shquote(srv.ca or srv.dir .. "/cert.pem"), args))
end

local PY = io.open("/usr/bin/python3", "r") and "/usr/bin/python3" or "python3"

-- A python3 script (text), its output.
local function python(srv, text, ...)
    local f = srv.dir .. "/client.py"
    life.writefile(f, text)
    local args = {}
    for i, a in ipairs({ ... }) do args[i] = shquote(tostring(a)) end
    return run(string.format("timeout 30 %s %s %s", PY, shquote(f),
        table.concat(args, " ")))
end

-- Connect, send data (if any), then wait for the server to close: true
-- once it has (within timeout), and what it sent.
local function closed_by_server(port, data, timeout)
    local c = assert(socket.connect("127.0.0.1", port))
    if data then assert(c:send(data)) end
    c:settimeout(timeout or 10)
    local got = {}
    while true do
        local s, err, partial = c:receive(4096)
        local piece = s or partial
        if piece and #piece > 0 then got[#got + 1] = piece end
        if err == "closed" then c:close(); return true, table.concat(got) end
        if err == "timeout" then c:close(); return false, table.concat(got) end
    end
end

-- luaserv_tls_handshakes_total{result=...} summed over the workers of a
-- listener (default "text"), from the master's /metrics.
local function handshakes(srv, listener)
    local c = assert(socket.connect("127.0.0.1", srv.ports[5]))
    c:settimeout(10)
    assert(c:send("GET /metrics HTTP/1.0\r\n\r\n"))
    local all = c:receive("*a")
    c:close()
    local t = {}
    for labels, v in all:gmatch("luaserv_tls_handshakes_total{([^}]*)} (%d+)") do
        if labels:find('listener="' .. (listener or "text") .. '"', 1,
                       true) then
            local r = labels:match('result="(%w+)"')
            t[r] = (t[r] or 0) + tonumber(v)
        end
    end
    return t
end

local function no_key_in(text)
    assert.is_falsy(text:find("PRIVATE KEY", 1, true), "a key in the log")
    assert.is_falsy(text:find("MII", 1, true), "key material in the log")
end

describe("tls", function()
    after_each(function()
        server.cleanup()
        life.cleanup()
    end)

    it("serves https to curl with ALPN http/1.1, keep-alive and a large body",
    function()
        local srv = setup()
        local out, code = curl(srv, "/hello")
        assert.are.equal(0, code, out)
        assert.are.equal("v1 /hello", out)
        out, code = curl(srv, "/a", "-v")
        assert.are.equal(0, code, out)
        assert.is_truthy(out:find("ALPN: server accepted http/1.1", 1, true),
            out)
        assert.is_truthy(out:find("SSL connection using TLSv1.3", 1, true),
            out)
        -- two requests on one connection (the second connects nothing),
        -- then a body of many records
        out, code = curl(srv, "/one https://localhost:" .. srv.port .. "/two",
            "-w ' %{num_connects}\\n'")
        assert.are.equal(0, code, out)
        assert.are.equal("v1 /one 1\nv1 /two 0\n", out)
        out, code = run(string.format("curl -sS -m 20 --cacert %s " ..
            "https://localhost:%d/big | wc -c", shquote(srv.dir ..
            "/cert.pem"), srv.port))
        assert.are.equal(0, code, out)
        assert.are.equal("1000000", out:match("%d+"))
        -- plain http:// to the same port: told so in plain HTTP
        out, code = run("curl -sS -m 20 -i http://127.0.0.1:" .. srv.port ..
            "/")
        assert.are.equal(0, code, out)
        assert.is_truthy(out:find("^HTTP/1.1 400"), out)
        assert.is_truthy(out:find("The plain HTTP request was sent to HTTPS " ..
            "port", 1, true), out)
        assert.are.equal(0, srv:stop())
        no_key_in(srv:rawlog())
    end)

    it("speaks TLS 1.2 and 1.3 on text:// and tcp:// to openssl s_client",
    function()
        local srv = setup()
        for _, v in ipairs({ "1_2", "1_3" }) do
            local out, code = s_client(srv, srv.ports[2], "-tls" .. v ..
                " -quiet -verify_return_error", "line one\nline two\nquit\n")
            assert.are.equal(0, code, out)
            assert.is_truthy(out:find("line one\nline two\nbye\n", 1, true),
                out)
            out = s_client(srv, srv.ports[2], "-tls" .. v, "x\n")
            assert.is_truthy(out:find("New, TLSv" .. v:gsub("_", ".") ..
                ", Cipher", 1, true), out)
            assert.is_truthy(out:find("Verify return code: 0 (ok)", 1, true),
                out)
        end
        -- tcp:// allows TLS 1.3 only (protocols = "TLSv1.3")
        local out = s_client(srv, srv.ports[4], "-tls1_2", "raw")
        assert.is_falsy(out:find("New, TLSv1.2", 1, true), out)
        assert.is_truthy(out:find("alert protocol version", 1, true), out)
        local code
        out, code = s_client(srv, srv.ports[4], "-tls1_3 -quiet", "raw bytes quit")
        assert.are.equal(0, code, out)
        assert.is_truthy(out:find("raw bytes quit", 1, true), out)
        assert.are.equal(0, srv:stop())
    end)

    it("picks the certificate by SNI", function()
        local srv = setup()
        local out = s_client(srv, srv.ports[2], "-servername b.test", "x\n")
        assert.is_truthy(out:find("subject=CN = b.test", 1, true), out)
        out = s_client(srv, srv.port, "-servername B.TEST", "")
        assert.is_truthy(out:find("subject=CN = b.test", 1, true), out)
        out = s_client(srv, srv.ports[2], "-servername localhost", "x\n")
        assert.is_truthy(out:find("subject=CN = localhost", 1, true), out)
        out = s_client(srv, srv.ports[2], "-servername other.test", "x\n")
        assert.is_truthy(out:find("subject=CN = localhost", 1, true), out)
        out = s_client(srv, srv.ports[2], "-noservername", "x\n")
        assert.is_truthy(out:find("subject=CN = localhost", 1, true), out)
        -- curl resolving b.test to us verifies against b.test's certificate
        local code
        out, code = run(string.format("curl -sS -m 20 --cacert %s --resolve " ..
            "b.test:%d:127.0.0.1 https://b.test:%d/sni", shquote(srv.dir ..
            "/b.crt"), srv.port, srv.port))
        assert.are.equal(0, code, out)
        assert.are.equal("v1 /sni", out)
        assert.are.equal(0, srv:stop())
    end)

    it("resumes sessions from tickets, across the workers and a reload",
    function()
        local srv = setup()
        -- HTTP/1.0: the server closes after its answer, so s_client
        -- (-ign_eof) stays until then and has the TLS 1.3 ticket, which
        -- comes after the handshake
        local req = "GET / HTTP/1.0\r\n\r\n"
        for _, v in ipairs({ "1_2", "1_3" }) do
            local sess = srv.dir .. "/sess" .. v
            local out = s_client(srv, srv.port, "-ign_eof -tls" .. v ..
                " -sess_out " .. shquote(sess), req)
            assert.is_truthy(out:find("New, TLSv1", 1, true), out)
            -- the https listener has two workers: several connections
            -- reach both, and each takes the ticket
            for i = 1, 6 do
                out = s_client(srv, srv.port, "-ign_eof -tls" .. v ..
                    " -sess_in " .. shquote(sess), req)
                assert.is_truthy(out:find("Reused, TLSv1", 1, true),
                    "resumption " .. i .. " (TLS " .. v .. "): " .. out)
            end
        end
        -- the next generation takes the tickets of the last one
        local r = life.cmd(srv, "reload")
        assert.are.equal(0, r.code, life.describe_run(r))
        for _, v in ipairs({ "1_2", "1_3" }) do
            local out = s_client(srv, srv.port, "-ign_eof -tls" .. v ..
                " -sess_in " .. shquote(srv.dir .. "/sess" .. v), req)
            assert.is_truthy(out:find("Reused, TLSv1", 1, true),
                "after the reload (TLS " .. v .. "): " .. out)
        end
        assert.are.equal(0, srv:stop())
    end)

    it("serves python3's ssl module", function()
        local srv = setup()
        local out, code = python(srv, [[
import http.client, socket, ssl, sys
ctx = ssl.create_default_context(cafile=sys.argv[1])
with socket.create_connection(("127.0.0.1", int(sys.argv[3]))) as s:
    with ctx.wrap_socket(s, server_hostname="localhost") as t:
        t.sendall(b"hello\nworld\n")
        buf = b""
        while buf.count(b"\n") < 2:
            buf += t.recv(100)
        print(t.version(), buf.decode().split())
h = http.client.HTTPSConnection("localhost", int(sys.argv[2]), context=ctx)
for p in ("/a", "/b"):
    h.request("GET", p)
    r = h.getresponse()
    print(r.status, r.read().decode())
print(h.sock.selected_alpn_protocol())
]], srv.dir .. "/cert.pem", srv.port, srv.ports[2])
        assert.are.equal(0, code, out)
        assert.is_truthy(out:find("TLSv1.3 ['hello', 'world']", 1, true), out)
        assert.is_truthy(out:find("200 v1 /a\n200 v1 /b\n", 1, true), out)
        assert.is_truthy(out:find("None\n", 1, true) or
            out:find("http/1.1", 1, true), out)
        assert.are.equal(0, srv:stop())
    end)

    it("serves a connection on after a quiet spell gave its buffers back",
    function()
        -- quiet for over a second: the worker frees OpenSSL's buffers of
        -- the connection (tls.c, the lean sweep); the next records, a
        -- large answer and pipelined requests, take new ones
        local srv = setup()
        local out, code = python(srv, [[
import socket, ssl, sys, time
ctx = ssl.create_default_context(cafile=sys.argv[1])
s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", int(sys.argv[2]))),
                    server_hostname="localhost")
def answers(n):
    buf = b""
    got = []
    while len(got) < n:
        buf += s.recv(65536)
        while b"\r\n\r\n" in buf:
            head, rest = buf.split(b"\r\n\r\n", 1)
            size = int([l for l in head.split(b"\r\n")
                        if l.lower().startswith(b"content-length:")][0]
                       .split(b":")[1])
            if len(rest) < size:
                break
            got.append(rest[:size])
            buf = rest[size:]
    return got
for step in range(2):
    s.sendall(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n")
    print(answers(1)[0].decode())
    time.sleep(2.2)
    s.sendall(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
    print(len(answers(1)[0]))
    time.sleep(2.2)
    s.sendall(b"GET /b HTTP/1.1\r\nHost: x\r\n\r\n"
              b"GET /c HTTP/1.1\r\nHost: x\r\n\r\n")
    print(b" ".join(answers(2)).decode())
]], srv.dir .. "/cert.pem", srv.port)
        assert.are.equal(0, code, out)
        assert.are.equal(string.rep("v1 /a\n1000000\nv1 /b v1 /c\n", 2), out)
        assert.are.equal(0, srv:stop())
    end)

    it("serves wss:// to python3-websockets", function()
        local srv = setup()
        local out, code = python(srv, [[
import asyncio, ssl, sys
import websockets
async def main():
    ctx = ssl.create_default_context(cafile=sys.argv[1])
    url = "wss://localhost:%s/echo" % sys.argv[2]
    async with websockets.connect(url, ssl=ctx) as ws:
        for m in ("one", "x" * 100000):
            await ws.send(m)
            r = await asyncio.wait_for(ws.recv(), 10)
            print(len(r), r[:5])
asyncio.run(main())
]], srv.dir .. "/cert.pem", srv.ports[3])
        assert.are.equal(0, code, out)
        assert.are.equal("3 one\n100000 xxxxx\n", out)
        assert.are.equal(0, srv:stop())
    end)

    it("closes garbage, half handshakes and silent clients, and serves on",
    function()
        local srv = setup()
        local port = srv.ports[2]
        -- garbage: closed at once, and the worker serves others
        local closed = closed_by_server(port, string.rep("\0garbage", 100))
        assert.is_true(closed)
        -- plain text to a text:// TLS port: closed, no HTTP answer
        local got
        closed, got = closed_by_server(port, "GET / HTTP/1.1\r\n\r\n")
        assert.is_true(closed)
        assert.are.equal("", got)
        -- half a ClientHello, and a client that sends nothing: both
        -- closed by handshakeTimeout (1 s here) while others are served
        local half = assert(socket.connect("127.0.0.1", port))
        assert(half:send("\22\3\1\2\0\1\0\1\252\3\3"))
        local silent = assert(socket.connect("127.0.0.1", port))
        local out, code = s_client(srv, port, "-quiet", "meanwhile\nquit\n")
        assert.are.equal(0, code, out)
        assert.is_truthy(out:find("meanwhile", 1, true), out)
        for _, c in ipairs({ half, silent }) do
            c:settimeout(15)
            local s, err = c:receive(1)
            assert.is_nil(s)
            assert.are.equal("closed", err)
            c:close()
        end
        -- many bad clients: each closed, the log line rate-limited
        for _ = 1, 40 do
            assert.is_true((closed_by_server(port, "\1\2\3\4\5\6\7\8\9")))
        end
        out, code = s_client(srv, port, "-quiet", "still here\nquit\n")
        assert.are.equal(0, code, out)
        assert.is_truthy(out:find("still here", 1, true), out)
        assert.is_truthy(srv:wait_log("handshakeTimeout", 10))
        srv:wait_log("suppressed", 5)
        local n = srv:count_log("TLS handshake with 127%.0%.0%.1:%d+ failed")
        assert.is_true(n >= 3 and n <= 30, "logged " .. n .. " times")
        -- counted: 42 bad, 2 timed out, 2 good (the figures are copied
        -- every half second)
        local t = server.wait_until(function()
            local h = handshakes(srv)
            return (h.failed or 0) >= 42 and (h.full or 0) >= 2 and h
        end, 10) or handshakes(srv)
        assert.are.equal(42, t.failed)
        assert.are.equal(2, t.timeout)
        assert.are.equal(2, t.full)
        assert.are.equal(0, srv:stop())
    end)

    it("finishes a handshake under way when a reload begins, and answers",
    function()
        local srv = setup({ reload = false })
        local f = srv.dir .. "/slow.py"
        life.writefile(f, [[
import socket, ssl, sys
port, ca = int(sys.argv[1]), sys.argv[2]
ctx = ssl.create_default_context(cafile=ca)
inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
tls = ctx.wrap_bio(inc, out, server_hostname="localhost")
s = socket.create_connection(("127.0.0.1", port), timeout=20)
try:
    tls.do_handshake()
except ssl.SSLWantReadError:
    pass
s.sendall(out.read())                  # the ClientHello, then a pause
print("hello sent", flush=True)
sys.stdin.readline()
while True:
    try:
        tls.do_handshake()
        break
    except ssl.SSLWantReadError:
        data = s.recv(65536)
        if not data:
            print("closed during the handshake", flush=True)
            sys.exit(1)
        inc.write(data)
tls.write(b"GET /slow HTTP/1.1\r\nHost: localhost\r\n\r\n")
s.sendall(out.read())
resp = b""
while b"v1 /slow" not in resp:
    data = s.recv(65536)
    if not data:
        break
    inc.write(data)
    try:
        resp += tls.read(65536)
    except (ssl.SSLWantReadError, ssl.SSLZeroReturnError):
        pass
print(resp.split(b"\r\n")[0].decode(), resp.split(b"\r\n\r\n", 1)[-1].decode())
]])
        local outf = srv.dir .. "/slow.out"
        local p = io.popen(string.format("timeout 60 %s %s %d %s >%s 2>&1",
            PY, shquote(f), srv.port, shquote(srv.dir .. "/cert.pem"),
            shquote(outf)), "w")
        assert(server.wait_until(function()
            local o = server.readfile(outf)
            return o and o:find("hello sent", 1, true)
        end, 20), "the client did not start")
        local r = life.cmd(srv, "reload")
        assert.are.equal(0, r.code, life.describe_run(r))
        p:write("go\n")
        p:close()
        local out = server.readfile(outf)
        assert.is_truthy(out:find("HTTP/1.1 200 OK v1 /slow", 1, true), out)
        assert.are.equal(0, srv:stop())
    end)

    it("picks up a renewed certificate on reload; a broken one is refused",
    function()
        local srv, dir = setup({ reload = false })
        local function served_cert()
            local out = s_client(srv, srv.port, "", "")
            return out:match("(%-%-%-%-%-BEGIN CERTIFICATE%-%-%-%-%-.-" ..
                "%-%-%-%-%-END CERTIFICATE%-%-%-%-%-)")
        end
        local old = server.readfile(dir .. "/cert.pem")
        assert.are.equal(old:gsub("%s+$", ""), served_cert())
        -- the certbot case: new files under the same names, then reload
        make_cert(dir, "cert.pem", "key.pem", "localhost")
        local r = life.cmd(srv, "reload")
        assert.are.equal(0, r.code, life.describe_run(r))
        local renewed = server.readfile(dir .. "/cert.pem")
        assert.are_not.equal(old, renewed)
        srv.ca = dir .. "/ca.pem" -- curl's copy, while cert.pem is broken
        life.writefile(srv.ca, renewed)
        assert.are.equal(renewed:gsub("%s+$", ""), served_cert())
        local out = s_client(srv, srv.port, "-verify_return_error", "")
        assert.is_truthy(out:find("Verify return code: 0 (ok)", 1, true), out)
        local code
        out, code = curl(srv, "/renewed")
        assert.are.equal(0, code, out)
        assert.are.equal("v1 /renewed", out)

        srv:expect_error("reload")
        srv:expect_error("ssl%.")
        local function refused(what, pattern)
            r = life.cmd(srv, "reload")
            assert.are.equal(1, r.code, what .. ": " .. life.describe_run(r))
            assert.is_truthy(r.stderr:find(pattern), what .. ": " ..
                life.describe_run(r))
            no_key_in(r.stderr)
            -- the old generation serves, with the renewed certificate
            out, code = curl(srv, "/still")
            assert.are.equal(0, code, what .. ": " .. out)
            assert.are.equal("v1 /still", out)
            assert.are.equal(renewed:gsub("%s+$", ""), served_cert())
        end
        -- a key that belongs to another certificate
        local key = server.readfile(dir .. "/key.pem")
        life.writefile(dir .. "/key.pem", server.readfile(dir .. "/b.key"))
        refused("mismatched key", 'ssl%.key "[^"]*key%.pem" does not match ' ..
            'ssl%.cert "[^"]*cert%.pem"')
        life.writefile(dir .. "/key.pem", key)
        -- a certificate that is not one
        life.writefile(dir .. "/cert.pem", "not a certificate\n")
        refused("garbage cert", 'ssl%.cert "[^"]*cert%.pem": not a usable ' ..
            'PEM certificate')
        -- a missing key
        life.writefile(dir .. "/cert.pem", renewed)
        os.remove(dir .. "/key.pem")
        refused("missing key", 'ssl%.key "[^"]*key%.pem": cannot read it: ' ..
            'No such file or directory')
        life.writefile(dir .. "/key.pem", key)
        r = life.cmd(srv, "reload")
        assert.are.equal(0, r.code, life.describe_run(r))
        assert.are.equal(0, srv:stop())
        no_key_in(srv:rawlog())
    end)

    it("serves a key only root can read from workers that run as nobody",
    function()
        local uid = server.capture("id -u")
        if uid ~= "0" then
            pending("needs root (the master reads as root, workers drop)")
            return
        end
        local dir = life.tmpdir()
        local q = shquote(dir)
        -- the workers (nobody) load the app from dir; the key stays root's
        assert(run("chmod 0755 " .. q .. " && mkdir -m 0700 " .. q ..
            "/private") ~= nil)
        local function new_cert()
            make_cert(dir, "cert.pem", "private/key.pem", "localhost")
            local out, code = run("chmod 0600 " .. q .. "/private/key.pem " ..
                "&& stat -c '%a %U' " .. q .. "/private/key.pem")
            assert(code == 0 and out == "600 root\n", out)
        end
        new_cert()
        life.copy_fixtures(dir, "tls_user.lua")
        local srv = life.start(dir, "tls_user.lua",
            { wait_workers = 2, reload = false })
        srv.ca = dir .. "/ca.pem"
        life.writefile(srv.ca, server.readfile(dir .. "/cert.pem"))
        local out, code = curl(srv, "/a")
        assert.are.equal(0, code, out)
        assert.are.equal("uid 65534 /a", out) -- nobody, as settings.user says
        -- not readable by the workers themselves: the master's reading counts
        out, code = run("setpriv --reuid=65534 --regid=65534 --clear-groups " ..
            "cat " .. q .. "/private/key.pem")
        assert.are_not.equal(0, code, out)

        local function served_cert()
            local o = s_client(srv, srv.port, "", "")
            return o:match("(%-%-%-%-%-BEGIN CERTIFICATE%-%-%-%-%-.-" ..
                "%-%-%-%-%-END CERTIFICATE%-%-%-%-%-)")
        end
        -- renewed files under the same names, read anew by the reload
        local old = server.readfile(dir .. "/cert.pem")
        new_cert()
        local renewed = server.readfile(dir .. "/cert.pem")
        assert.are_not.equal(old, renewed)
        local r = life.cmd(srv, "reload")
        assert.are.equal(0, r.code, life.describe_run(r))
        life.writefile(srv.ca, renewed)
        assert.are.equal(renewed:gsub("%s+$", ""), served_cert())
        out, code = curl(srv, "/renewed")
        assert.are.equal(0, code, out)
        assert.are.equal("uid 65534 /renewed", out)

        srv:expect_error("reload")
        srv:expect_error("ssl%.")
        local key = dir .. "/private/key.pem"
        local good = server.readfile(key)
        local function refused(what, pattern)
            r = life.cmd(srv, "reload")
            assert.are.equal(1, r.code, what .. ": " .. life.describe_run(r))
            assert.is_truthy(r.stderr:find(pattern), what .. ": " ..
                life.describe_run(r))
            no_key_in(r.stderr)
            out, code = curl(srv, "/still")
            assert.are.equal(0, code, what .. ": " .. out)
            assert.are.equal("uid 65534 /still", out)
            assert.are.equal(renewed:gsub("%s+$", ""), served_cert())
        end
        make_cert(dir, "other.pem", "private/other.key", "localhost")
        assert(os.rename(dir .. "/private/other.key", key))
        refused("mismatched key", 'ssl%.key "[^"]*key%.pem" does not match ' ..
            'ssl%.cert "[^"]*cert%.pem"')
        os.remove(key)
        refused("missing key", 'ssl%.key "[^"]*key%.pem": cannot read it: ' ..
            'No such file or directory')
        assert(run("mkdir " .. shquote(key)) ~= nil)
        refused("unreadable key", 'ssl%.key "[^"]*key%.pem": cannot read ' ..
            'it: Is a directory')
        assert(run("rmdir " .. shquote(key)) ~= nil)
        life.writefile(key, good)
        assert(run("chmod 0600 " .. shquote(key)) ~= nil)
        r = life.cmd(srv, "reload")
        assert.are.equal(0, r.code, life.describe_run(r))
        out, code = curl(srv, "/again")
        assert.are.equal(0, code, out)
        assert.are.equal("uid 65534 /again", out)
        assert.are.equal(0, srv:stop())
        no_key_in(srv:rawlog())
    end)

    it("refuses to start without a usable certificate, and https:// " ..
       "without ssl", function()
        local dir = life.tmpdir()
        life.writefile(dir .. "/a.lua", [[
local luaserv = require "luaserv"
luaserv.listen("https://127.0.0.1:1", { ssl = { cert = "nope.pem",
                                                key = "nope.key" } })
]])
        local r = life.ctl({ dir .. "/a.lua", "check" })
        assert.are.equal(1, r.code, life.describe_run(r))
        assert.is_truthy(r.stderr:find('ssl.cert "' .. dir ..
            '/nope.pem": cannot read it', 1, true), life.describe_run(r))
        assert.is_truthy(r.stderr:find("a.lua:2:", 1, true),
            life.describe_run(r))
        life.writefile(dir .. "/b.lua", [[
local luaserv = require "luaserv"
luaserv.listen("wss://127.0.0.1:1")
]])
        r = life.ctl({ dir .. "/b.lua", "check" })
        assert.are.equal(1, r.code, life.describe_run(r))
        assert.is_truthy(r.stderr:find("needs the 'ssl' option", 1, true),
            life.describe_run(r))
        life.writefile(dir .. "/c.lua", [[
local luaserv = require "luaserv"
luaserv.listen("text://127.0.0.1:1", { ssl = { cert = "c", key = "k",
                                               protocol = "TLSv1.3" } })
]])
        r = life.ctl({ dir .. "/c.lua", "check" })
        assert.are.equal(1, r.code, life.describe_run(r))
        assert.is_truthy(r.stderr:find("unknown field 'protocol'", 1, true),
            life.describe_run(r))
    end)

    it("speaks TLS outbound: sock:sslhandshake, https:// and redis ssl",
    function()
        local srv = setup()
        local function case(name)
            local out, code = run(string.format("curl -sS -m 30 " ..
                "http://127.0.0.1:%d/out/%s", srv.ports[6], name))
            assert.are.equal(0, code, out)
            return out
        end
        local before = handshakes(srv)
        -- verified against sslTrustedCertificate, then resumed
        assert.are.equal("ok over tls userdata over tls", case("verified"))
        assert.are.equal("ok over tls true", case("nosession"))
        local after = server.wait_until(function()
            local h = handshakes(srv)
            return (h.resumed or 0) > (before.resumed or 0) and h
        end, 10) or handshakes(srv)
        assert.are.equal((before.resumed or 0) + 1, after.resumed)
        assert.is_truthy(case("selfsigned"):find(
            "^err certificate verify failed: 18: self%-signed certificate"))
        assert.is_truthy(case("mismatch"):find(
            "^err certificate verify failed: 62: hostname mismatch"))
        assert.are.equal("ok over tls", case("unverified"))
        assert.is_truthy(case("plain"):find("^err handshake failed"))
        assert.are.equal("ok 200 v1 /c1, 200 v1 /c2, 200 v1 /c3, 1000000",
            case("https"))
        -- the https:// requests shared one connection: one full handshake
        local function web_handshakes()
            local h = handshakes(srv, "web")
            return (h.full or 0) + (h.resumed or 0)
        end
        server.wait_until(function() return web_handshakes() > 0 end, 10)
        assert.are.equal(1, web_handshakes())
        assert.are.equal("ok PONG tls 0, PONG tls 1", case("redis"))
        assert.are.equal(0, srv:stop())
    end)
end)
