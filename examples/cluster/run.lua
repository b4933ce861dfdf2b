-- The body of examples/cluster/run.sh (which puts it in a network
-- namespace of its own): start the cluster, run each fault case of
-- scenarios.lua, print the figures, stop everything by pid. Exits 1 when
-- a check fails (a lost or duplicated message, a failed HTTP request).
package.path = arg[0]:match("^(.*/)") .. "?.lua;" .. package.path
local cluster = require "cluster"
local scenarios = require "scenarios"

local opts = { clients = 6, conns = 4, messages = 60, rounds = 1 }
local i = 1
while arg[i] do
    local a = arg[i]
    if a == "--keep" then
        opts.keep = true
    elseif (a == "--clients" or a == "--conns" or a == "--messages" or
            a == "--rounds") and
           tonumber(arg[i + 1]) then
        opts[a:sub(3)] = math.tointeger(tonumber(arg[i + 1]))
        i = i + 1
    else
        io.stderr:write("usage: run.sh [--clients N] [--conns N] " ..
                        "[--messages N] [--rounds N] [--keep]\n")
        os.exit(2)
    end
    i = i + 1
end
scenarios.CLIENTS = opts.clients

local failed = {}
local function check(ok, what)
    if not ok then failed[#failed + 1] = what end
    print(string.format("    %s %s", ok and "ok  " or "FAIL", what))
end

local function chat_checks(r)
    if r.send_errors > 0 then
        print("  send errors (the sender was told): " ..
              scenarios.error_kinds(r))
    end
    check(r.sent > 0 and r.lost == 0 and r.duplicated == 0 and
          r.out_of_order == 0 and r.delivered == r.sent * opts.clients,
          "every acked message reached every client exactly once, in order")
end

local c = cluster.new { luaserv = os.getenv("LUASERV_BIN") }
local ok, err = pcall(function()
    print("cluster in " .. c.dir)
    c:start()
    print(string.format("  redis %s, hosts %s %s %s, haproxy %s (stats " ..
        "http://%s/stats), %d workers per host", c.redis.addr,
        c.hosts[1].addr, c.hosts[2].addr, c.hosts[3].addr, c.lb, c.stats,
        c.workers))

    print("\nstop -g of h3 under HTTP load (" .. opts.conns .. " connections)")
    local d = scenarios.drain_stop(c, 3, { conns = opts.conns })
    print(string.format("  /health said draining %.2f s after the stop; " ..
        "HAProxy took h3 out %.2f s later; h3 gone %.2f s after the stop",
        d.draining_after, d.down or -1, d.stop_seconds))
    print(string.format("  HTTP: %d requests, %d failed", d.http.requests,
                        d.http.failed))
    check(d.draining and d.down and d.alive_when_down,
          "out of HAProxy before it stopped accepting")
    check(d.http.failed == 0, "no HTTP request failed")
    c:heal()

    print("\nrolling reload of h1, h2, h3, " .. opts.rounds .. " round(s) " ..
          "(HTTP load, " .. opts.clients .. " chat clients sending)")
    local rr = scenarios.rolling_reload(c, { conns = opts.conns,
        clients = opts.clients, rounds = opts.rounds, after = opts.messages })
    local reload_ok = true
    for _, x in ipairs(rr.reloads) do
        if x.code ~= 0 then reload_ok = false end
    end
    check(reload_ok, #rr.reloads .. " reloads succeeded")
    print(string.format("  HTTP: %d requests, %d failed", rr.http.requests,
                        rr.http.failed))
    print(string.format("  chat: %s; %d reconnections",
                        scenarios.summary(rr.chat), rr.reconnects))
    check(rr.http.failed == 0, "no HTTP request failed")
    chat_checks(rr.chat)
    c:heal()

    print("\nkill -9 of h2 (chat clients sending, HTTP load)")
    local k = scenarios.kill_host(c, 2, { clients = opts.clients,
                                          after = opts.messages })
    print(string.format("  HAProxy took h2 out %.2f s after the kill; its " ..
        "clients were on h1/h3 after %.2f s", k.down, k.moved))
    print(string.format("  HTTP: %d requests, %d failed, %d sent to h2 " ..
        "after it was out", k.http.requests, k.http.failed,
        k.served_after_down))
    print(string.format("  chat: %s", scenarios.summary(k.chat)))
    check(k.served_after_down == 0, "nothing sent to h2 once it was out")
    chat_checks(k.chat)
    c:heal()

    print("\nredis-server stopped and started again (chat clients sending)")
    local rs = scenarios.redis_restart(c, { clients = opts.clients,
                                            after = opts.messages })
    print(string.format("  down %.2f s (senders told after %.2f s); every " ..
        "host's readers back %.2f s after the restart, %d messages acked " ..
        "meanwhile", rs.down_seconds, rs.told_after, rs.back_after,
        rs.sent_while_reconnecting))
    print(string.format("  chat: %s", scenarios.summary(rs.chat)))
    check(rs.hosts_back == 3, "every host reconnected")
    check(rs.session_after, "a session made before the restart survived")
    chat_checks(rs.chat)
end)
if not ok then
    failed[#failed + 1] = tostring(err)
    io.stderr:write("run.sh: " .. tostring(err) .. "\n")
end
local killed = c:teardown()
local bad = c:bad_log_lines()
for _, k in ipairs(killed) do failed[#failed + 1] = "had to kill " .. k end
for _, b in ipairs(bad) do failed[#failed + 1] = b end
if #failed > 0 or opts.keep then
    print("\nfiles kept in " .. c.dir)
else
    c:remove()
end
if #failed > 0 then
    print("\n" .. #failed .. " problem(s):\n  " .. table.concat(failed, "\n  "))
    os.exit(1)
end
print("\nall checks passed")
