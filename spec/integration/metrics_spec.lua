-- The master's Prometheus endpoint (settings.metrics): the text format
-- checked strictly, figures that add up, a stuck worker that still shows,
-- reloads and restarts counted.
local server = require "helpers.server"
local client = require "helpers.client"
local socket = require "socket"

local APP = "spec/fixtures/apps/metrics.lua"

-- GET path from the master; status, headers (lower-case), body.
local function scrape(port, path)
    local c = assert(socket.connect("127.0.0.1", port))
    c:settimeout(10)
    assert(c:send("GET " .. (path or "/metrics") .. " HTTP/1.1\r\n" ..
                  "Host: x\r\n\r\n"))
    local all = c:receive("*a")
    c:close()
    local head, body = all:match("^(.-)\r\n\r\n(.*)$")
    local status = tonumber(head:match("^HTTP/1%.%d (%d+)"))
    local headers = {}
    for k, v in head:gmatch("\r\n([^:]+):%s*([^\r]*)") do
        headers[k:lower()] = v
    end
    return status, headers, body
end

-- Prometheus text format 0.0.4, strictly: returns families
-- { name = {type=, help=, samples = { {labels=, value=} } } }, or raises.
local function parse(text)
    local fam, order, seen, current = {}, {}, {}, nil
    local NAME = "^[a-zA-Z_:][a-zA-Z0-9_:]*$"
    assert(text:sub(-1) == "\n", "the text ends with a newline")
    local n = 0
    for line in text:gmatch("([^\n]*)\n") do
        n = n + 1
        local where = "line " .. n .. ": " .. line
        if line:match("^# HELP ") then
            local name, help = line:match("^# HELP (%S+) (.+)$")
            assert(name and name:match(NAME), "bad HELP, " .. where)
            assert(not fam[name], "family listed twice, " .. where)
            fam[name] = { help = help, samples = {} }
            order[#order + 1] = name
            current = name
        elseif line:match("^# TYPE ") then
            local name, ty = line:match("^# TYPE (%S+) (%S+)$")
            assert(name == current, "TYPE right after its HELP, " .. where)
            assert(ty == "counter" or ty == "gauge", "type, " .. where)
            assert(#fam[name].samples == 0, "TYPE before samples, " .. where)
            fam[name].type = ty
        else
            assert(not line:match("^#"), "unknown comment, " .. where)
            local name, rest = line:match("^([a-zA-Z_:][a-zA-Z0-9_:]*)(.*)$")
            assert(name, "bad sample, " .. where)
            assert(name == current and fam[name].type,
                   "a sample of the family just declared, " .. where)
            local labels, value = {}, rest
            if rest:sub(1, 1) == "{" then
                local i = 2
                while true do
                    local k, j = rest:match("^([a-zA-Z_][a-zA-Z0-9_]*)=\"()", i)
                    assert(k, "label name, " .. where)
                    local v = {}
                    while true do
                        local ch = rest:sub(j, j)
                        assert(ch ~= "", "unterminated label value, " .. where)
                        if ch == "\\" then
                            local e = rest:sub(j + 1, j + 1)
                            assert(e == "\\" or e == "\"" or e == "n",
                                   "bad escape, " .. where)
                            v[#v + 1] = e == "n" and "\n" or e
                            j = j + 2
                        elseif ch == "\"" then
                            j = j + 1
                            break
                        else
                            v[#v + 1] = ch
                            j = j + 1
                        end
                    end
                    assert(labels[k] == nil, "label twice, " .. where)
                    labels[k] = table.concat(v)
                    local sep = rest:sub(j, j)
                    if sep == "}" then
                        value = rest:sub(j + 1)
                        break
                    end
                    assert(sep == ",", "label separator, " .. where)
                    i = j + 1
                end
            end
            local v = value:match("^ (%S+)$")
            assert(v and (tonumber(v) or v == "NaN" or v == "+Inf" or
                          v == "-Inf"), "value, " .. where)
            local key = name
            local ks = {}
            for k in pairs(labels) do ks[#ks + 1] = k end
            table.sort(ks)
            for _, k in ipairs(ks) do key = key .. "|" .. k .. "=" .. labels[k] end
            assert(not seen[key], "series twice, " .. where)
            seen[key] = true
            if fam[name].type == "counter" then
                assert(name:match("_total$"), "a counter ends in _total, " ..
                       where)
                assert(tonumber(v) >= 0, "a counter is not negative, " .. where)
            end
            local s = fam[name].samples
            s[#s + 1] = { labels = labels, value = tonumber(v) }
        end
    end
    return fam, order
end

local function sum(fam, name, filter)
    local t = 0
    for _, s in ipairs(assert(fam[name], "no family " .. name).samples) do
        local ok = true
        for k, v in pairs(filter or {}) do ok = ok and s.labels[k] == v end
        if ok then t = t + s.value end
    end
    return t
end

describe("metrics (settings.metrics)", function()
    local srv, mport, flag
    before_each(function()
        mport = server.free_port()
        flag = os.tmpname()
        os.remove(flag)
        srv = server.start(APP, { wait_workers = 2, env = {
            METRICS_ADDR = "127.0.0.1:" .. mport, BROKEN_FLAG = flag } })
    end)
    after_each(function()
        if srv then srv:stop() end
        os.remove(flag)
        server.cleanup()
    end)

    it("answers GET /metrics in the text format, strictly; 404 otherwise",
    function()
        local status, headers, body = scrape(mport)
        assert.are.equal(200, status)
        assert.are.equal("text/plain; version=0.0.4; charset=utf-8",
                         headers["content-type"])
        assert.are.equal(#body, tonumber(headers["content-length"]))
        local fam = parse(body)
        for _, name in ipairs({ "luaserv_up", "luaserv_reloads_total",
            "luaserv_worker_restarts_total", "luaserv_connections_open",
            "luaserv_connections_accepted_total",
            "luaserv_messages_received_total", "luaserv_sent_bytes_total",
            "luaserv_timeouts_total", "luaserv_lua_errors_total",
            "luaserv_lua_memory_bytes", "luaserv_worker_up" }) do
            assert.is_truthy(fam[name], name)
            assert.is_truthy(#fam[name].help > 0, name)
        end
        assert.are.equal(1, sum(fam, "luaserv_up"))
        assert.are.equal(2, sum(fam, "luaserv_worker_up", { listener = "echo" }))
        assert.is_true(sum(fam, "luaserv_lua_memory_bytes") > 0)
        assert.are.equal(404, (scrape(mport, "/")))
    end)

    it("counts messages, connections and errors exactly, from both workers",
    function()
        srv:expect_error("boom on purpose")
        local conns = {}
        for i = 1, 6 do
            conns[i] = client.must_connect(srv.port)
            for j = 1, 5 do
                assert.are.equal("m" .. j, conns[i]:request("m" .. j, 10))
            end
        end
        local b = client.must_connect(srv.port)
        assert(b:send("boom\n"))
        assert.is_truthy(b:wait_closed(10))
        b:close()
        local fam
        assert.is_truthy(server.wait_until(function()
            fam = parse(select(3, scrape(mport)))
            return sum(fam, "luaserv_messages_received_total") == 31 and
                sum(fam, "luaserv_connections_open") == 6
        end, 10), "figures: " .. tostring(fam and
            sum(fam, "luaserv_messages_received_total")))
        assert.are.equal(30, sum(fam, "luaserv_messages_sent_total"))
        -- the 7 here and the start-up probe's (server.start connects)
        local accepted = sum(fam, "luaserv_connections_accepted_total")
        assert.is_true(accepted >= 7 and accepted <= 9, accepted)
        assert.are.equal(accepted - 6,
                         sum(fam, "luaserv_connections_closed_total"))
        assert.are.equal(1, sum(fam, "luaserv_lua_errors_total"))
        assert.are.equal(30 * 3 + 5, sum(fam, "luaserv_received_bytes_total"))
        for _, c in ipairs(conns) do c:close() end
    end)

    it("still shows a stuck worker (SIGSTOP), its figures ageing", function()
        local pids = srv:workers()
        server.kill(pids[1], "STOP")
        finally(function() server.kill(pids[1], "CONT") end)
        socket.sleep(1.2)
        local status, _, body = scrape(mport)
        assert.are.equal(200, status)
        local fam = parse(body)
        assert.are.equal(2, #fam.luaserv_worker_up.samples)
        local oldest = 0
        for _, s in ipairs(fam.luaserv_worker_figures_age_seconds.samples) do
            oldest = math.max(oldest, s.value)
        end
        assert.is_true(oldest >= 1, "oldest figures " .. oldest .. " s old")
    end)

    it("counts reloads, failed reloads and worker restarts", function()
        srv:reload()
        local fam = parse(select(3, scrape(mport)))
        assert.are.equal(1, sum(fam, "luaserv_reloads_total"))
        assert.are.equal(2, sum(fam, "luaserv_generation"))
        -- a broken script: refused, counted, the generation keeps serving
        srv:expect_error("broken on purpose")
        srv:expect_error("reload failed")
        local f = assert(io.open(flag, "w"))
        f:close()
        server.kill(srv.pid, "HUP")
        assert.is_truthy(srv:wait_log("reload failed", 20))
        os.remove(flag)
        fam = parse(select(3, scrape(mport)))
        assert.are.equal(1, sum(fam, "luaserv_reload_failures_total"))
        assert.are.equal(2, sum(fam, "luaserv_generation"))
        -- kill -9 a worker: restarted, counted
        srv:expect_error("killed by signal")
        local pids = srv:workers()
        server.kill(pids[1], "KILL")
        assert.is_truthy(server.wait_until(function()
            fam = parse(select(3, scrape(mport)))
            return sum(fam, "luaserv_worker_restarts_total") == 1 and
                sum(fam, "luaserv_worker_up") == 2
        end, 20))
    end)
end)

describe("metrics setting", function()
    it("refuses an address that is not host:port", function()
        local out = server.capture("METRICS_ADDR=nonsense LUASERV_TEST_PORT=1 " ..
            server.shquote(os.getenv("LUASERV_BIN") or "build/luaserv") ..
            " " .. APP .. " check 2>&1; echo \"exit=$?\"")
        assert.is_truthy(out:find("bad setting 'metrics'", 1, true), out)
        assert.is_truthy(out:find("exit=1", 1, true), out)
    end)
end)
