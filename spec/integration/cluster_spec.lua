-- Scale-out (issue 19): examples/cluster built for real on one machine,
-- inside the suite's private network namespace: redis-server on
-- 127.0.2.1, three luaserv hosts on 127.0.1.1-3 (two workers each, one
-- Redis stream reader per worker), HAProxy on 127.0.3.1 with health checks
-- every 500 ms (fall 2, rise 1). The clients are examples/cluster/loadgen.py
-- (python3-websockets chat clients that count every message, and an HTTP
-- loop through the session API). The fault cases (examples/cluster/
-- scenarios.lua): a graceful stop (the health check says draining), a
-- rolling reload under load, kill -9 of a host, Redis restarted. Every
-- process is stopped by pid in teardown, whatever happened.
local server = require "helpers.server"
local external = require "helpers.external"

package.path = "examples/cluster/?.lua;" .. package.path
local cluster = require "cluster"
local scenarios = require "scenarios"

local PY = io.open("/usr/bin/python3", "r") and "/usr/bin/python3" or "python3"
local CLIENTS = scenarios.CLIENTS

local skip
do
    local ok, why = server.private_netns()
    if not ok then
        skip = "needs root in a network namespace of its own (" .. why ..
               "): the hosts bind 127.0.1.1-3"
    end
end

-- The figures, printed in teardown (the README's come from here and from
-- examples/cluster/run.sh).
local figures = {}
local function note(fmt, ...)
    figures[#figures + 1] = string.format(fmt, ...)
end

-- Every acknowledged message reached every client exactly once, in order.
local function assert_exactly_once(r, what)
    local info = what .. ": " .. scenarios.summary(r) .. "\n" ..
                 scenarios.describe_clients(r)
    assert.is_true(r.sent > 0, info)
    assert.are.equal(0, r.lost, info)
    assert.are.equal(0, r.duplicated, info)
    assert.are.equal(0, r.out_of_order, info)
    -- each client joined before the first message: each has all of them
    assert.are.equal(r.sent * CLIENTS, r.delivered, info)
end

describe("cluster of 3 luaserv hosts behind HAProxy, state in Redis", function()
    local c

    setup(function()
        if skip then return end
        assert(external.have("haproxy"), "haproxy is not installed " ..
               "(apt-get install haproxy; .ci/deps has it)")
        assert(external.have("redis-server"), "redis-server is not installed")
        assert(os.execute(PY .. " -c 'import websockets' 2>/dev/null"),
               "python3-websockets is not installed")
        c = cluster.new { luaserv = server.bin, python = PY }
        local ok, err = pcall(c.start, c)
        if not ok then
            c:teardown()
            error(err, 0)
        end
    end)

    teardown(function()
        if not c then return end
        local killed = c:teardown()
        local bad = c:bad_log_lines()
        io.stderr:write("\ncluster figures:\n  " ..
                        table.concat(figures, "\n  ") .. "\n")
        local keep = os.getenv("LUASERV_TEST_KEEP_LOGS") or #bad > 0 or
                     #killed > 0
        if keep then io.stderr:write("cluster files kept in " .. c.dir .. "\n") end
        c:remove(keep)
        assert(#killed == 0, "had to be killed: " .. table.concat(killed, ", "))
        assert(#bad == 0, "host logs:\n" .. table.concat(bad, "\n"))
    end)

    -- each scenario starts from a whole cluster, and leaves no client behind
    before_each(function()
        if c then c:heal() end
    end)

    after_each(function()
        if c then c:finish_loadgens() end
    end)

    local function it_cluster(name, fn)
        it(name, function()
            if skip then pending(skip) return end
            fn()
        end)
    end

    it_cluster("shares sessions: made through one host, read through all",
    function()
        local st, body = cluster.http(c.lb, "POST", "/sessions",
                                      '{"user":"ann"}')
        assert.are.equal(201, st, body)
        local id = body:match('"id":"(%x+)"')
        assert.truthy(id, body)
        local served = {}
        for i, h in ipairs(c.hosts) do
            local s2, b2, hd = cluster.http(h.addr, "GET", "/sessions/" .. id)
            assert.are.equal(200, s2, b2)
            assert.matches('"user":"ann"', b2)
            assert.matches('"hits":' .. i, b2)
            served[hd["x-served-by"]:match("^(h%d)/")] = true
        end
        assert.are.same({ h1 = true, h2 = true, h3 = true }, served)
        assert.are.equal(204, (cluster.http(c.lb, "DELETE", "/sessions/" .. id)))
        assert.are.equal(404, (cluster.http(c.hosts[2].addr, "GET",
                                            "/sessions/" .. id)))
        assert.are.equal(400, (cluster.http(c.lb, "POST", "/sessions", "{}")))
        assert.are.equal(404, (cluster.http(c.lb, "GET", "/nothing")))
    end)

    it_cluster("knows who is in which room, serves a room's history, " ..
               "and tells a returning client of a gap", function()
        local chat = c:loadgen("chat", { "--clients", "3", "--room", "den" })
        chat:wait(function(r) return r.connected == 3 end, 30)
        chat:cmd("send")
        local r = chat:wait(function(x) return x.sent >= 10 end, 30)
        assert.truthy(r, "no message acked")
        -- presence is refreshed every 2 s by each worker
        local seen = cluster.wait_until(function()
            local st, body = cluster.http(c.lb, "GET", "/rooms")
            return st == 200 and body:match('"den":3') and body
        end, 10)
        assert.truthy(seen, "GET /rooms never showed 3 members in den")
        local first = r.clients[1].start
        local st, body = cluster.http(c.lb, "GET",
                                      "/rooms/den/history?after=" .. first)
        assert.are.equal(200, st, body)
        assert.matches('"nick":"c%d"', body)
        assert.matches('"room":"den"', body)
        assert.are.equal(400, (cluster.http(c.lb, "GET",
                                            "/rooms/den/history?after=x")))
        local fin = chat:finish()
        -- ?last= an id older than anything in the stream, and not in it:
        -- a gap, then the replay, then caught_up; a bad id is refused
        local py = [[
import asyncio, json, sys, websockets
async def main(url):
    async with websockets.connect(url) as ws:
        while True:
            f = json.loads(await asyncio.wait_for(ws.recv(), 10))
            print(f["type"])
            if f["type"] == "caught_up":
                return
try:
    asyncio.run(main(sys.argv[1]))
except websockets.exceptions.InvalidStatusCode as e:
    print("status %d" % e.status_code)
]]
        local function run_py(query)
            local f = io.popen(PY .. " -c " .. cluster.shquote(py) .. " " ..
                cluster.shquote("ws://" .. c.lb .. "/chat?room=den&" .. query) ..
                " 2>&1")
            local out = f:read("a")
            f:close()
            return out
        end
        local out = run_py("last=1-0")
        assert.matches("^welcome\ngap\n", out)
        assert.matches("\nmsg\n.*caught_up\n$", out)
        assert.are.equal("welcome\ncaught_up\n", run_py("last=" .. fin.max_id))
        assert.are.equal("status 400\n", run_py("last=nope"))
        assert.are.equal("status 400\n", run_py("nick=a%20b"))
    end)

    it_cluster("stop -g: /health says draining, HAProxy takes the host out " ..
               "before it stops accepting, no request fails", function()
        local r = scenarios.drain_stop(c, 3)
        note("stop -g of h3 under HTTP load (4 connections): %d requests, " ..
             "%d failed; /health said draining %.2f s after the stop, and " ..
             "HAProxy took h3 out %.2f s after that", r.http.requests,
             r.http.failed, r.draining_after, r.down or -1)
        assert.is_true(r.draining, "h3 never answered 503 draining")
        assert.truthy(r.down, "HAProxy did not take h3 out")
        assert.is_true(r.alive_when_down,
                       "h3 was gone before HAProxy took it out")
        assert.is_true(r.stopped, "h3 did not stop")
        assert.are.equal(0, r.http.failed, table.concat(r.http.samples, "\n"))
        assert.truthy(r.up_again, "h3 did not come back UP")
    end)

    it_cluster("a rolling reload of the 3 hosts under load fails no " ..
               "request and loses no chat message", function()
        local r = scenarios.rolling_reload(c)
        note("rolling reload of h1, h2, h3 under HTTP load (4 connections): " ..
             "%d requests, %d failed", r.http.requests, r.http.failed)
        note("chat during the rolling reload (%d clients, %d reconnections): %s",
             CLIENTS, r.reconnects, scenarios.summary(r.chat))
        assert.are.equal(3, #r.reloads)
        for i = 1, 3 do
            assert.are.equal(0, r.reloads[i].code, r.reloads[i].output)
            assert.matches("reloaded, generation %d+", r.reloads[i].output)
            assert.are.equal("UP", r.status_during[i])
        end
        assert.are.equal(0, r.http.failed, table.concat(r.http.samples, "\n"))
        assert.is_true(r.http.requests >= 500, r.http.requests .. " requests")
        -- the chat clients of the old workers were closed with 1001 and came
        -- back with ?last=
        assert.is_true(r.reconnects >= CLIENTS, r.reconnects .. " reconnects")
        assert_exactly_once(r.chat, "chat during the rolling reload")
    end)

    it_cluster("kill -9 of a host: HAProxy takes it out within its check " ..
               "interval, its clients move, every message arrives once",
    function()
        local r = scenarios.kill_host(c, 2)
        note("kill -9 of h2 (%d processes): HAProxy took it out after %.2f s " ..
             "(inter 500ms fall 2), its clients were all on h1/h3 after " ..
             "%.2f s; HTTP (2 connections): %d requests, %d failed, %d " ..
             "served by h2 after it was out", #r.pids, r.down, r.moved,
             r.http.requests, r.http.failed, r.served_after_down)
        note("chat across the kill (%d clients, %d acked before it): %s",
             CLIENTS, r.sent_before, scenarios.summary(r.chat))
        assert.truthy(r.clients_before.h2, "no client was on h2")
        assert.is_true(r.down < 5, "HAProxy took " .. r.down .. " s")
        assert.are.equal(0, r.served_after_down,
                         "HAProxy sent requests to h2 after it was out")
        assert_exactly_once(r.chat, "chat across kill -9 of h2")
        assert.truthy(r.up_again, "h2 did not come back UP")
    end)

    it_cluster("Redis restarted: the hosts reconnect and resume, nothing " ..
               "acked is lost", function()
        local r = scenarios.redis_restart(c)
        note("Redis stopped for %.2f s and restarted (%d acked before, " ..
             "about %d while the readers were still backing off): %s; " ..
             "every host's readers were back %.2f s after the restart",
             r.down_seconds, r.sent_before, r.sent_while_reconnecting,
             scenarios.summary(r.chat), r.back_after)
        assert.is_true(r.stopped_cleanly, "redis-server did not stop on SIGTERM")
        assert.is_true(r.told, "no sender was told its message was not sent")
        assert.are.equal(3, r.hosts_back,
                         "not every host logged that Redis is back")
        assert_exactly_once(r.chat, "chat across a Redis restart")
        assert.is_true(r.session_after,
                       "the session made before the restart is gone")
    end)
end)
