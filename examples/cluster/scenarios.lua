--- The fault cases of examples/cluster, run against a started cluster
-- (cluster.lua); each returns what it measured. run.lua prints the
-- figures, spec/integration/cluster_spec.lua asserts on them. A step that
-- cannot go on (clients never connect, a host never comes back) raises.
local cluster = require "cluster"
local cjson = require "cjson"

local _M = {}

_M.CLIENTS = 6

--- One line for a chat report.
function _M.summary(r)
    return string.format("sent %d, delivered %d, duplicated %d, lost %d, " ..
        "out of order %d (send errors %d, unconfirmed %d)", r.sent,
        r.delivered, r.duplicated, r.lost, r.out_of_order, r.send_errors,
        r.unconfirmed_delivered)
end

--- The distinct reasons of a chat report's send errors, with counts of
-- the samples (each client keeps its first three).
function _M.error_kinds(r)
    local n, keys = {}, {}
    for _, c in ipairs(r.clients or {}) do
        for _, e in ipairs(c.error_samples or {}) do
            local k = tostring(e):gsub("%d+", "N")
            if not n[k] then keys[#keys + 1] = k end
            n[k] = (n[k] or 0) + 1
        end
    end
    local t = {}
    for _, k in ipairs(keys) do t[#t + 1] = k .. " (" .. n[k] .. ")" end
    return table.concat(t, "; ")
end

--- Every client of a chat report, one line each (for failure messages).
function _M.describe_clients(r)
    local t = {}
    for _, c in ipairs(r.clients or {}) do
        t[#t + 1] = string.format("%s hosts=%s connected=%s start=%s last=%s " ..
            "exp=%d got=%d dup=%d lost=%d missing=%s notes=%s", c.client,
            table.concat(c.hosts, ","), tostring(c.connected),
            tostring(c.start), tostring(c.last), c.expected, c.received,
            c.duplicated, c.lost, table.concat(c.missing, ","),
            table.concat(c.notes, " | "))
    end
    return table.concat(t, "\n")
end

-- host name -> number of connected clients
local function hosts_of(r)
    local n = {}
    for _, h in ipairs(r.hosts) do
        if h ~= cjson.null then n[h] = (n[h] or 0) + 1 end
    end
    return n
end

local function chat_clients(c, n)
    local chat = c:loadgen("chat", { "--clients", tostring(n) })
    local r, last = chat:wait(function(r) return r.connected == n end, 30)
    assert(r, "chat clients did not all connect: " ..
           (last and _M.describe_clients(last) or "?"))
    return chat, r
end

local function wait_sent(lg, n, timeout)
    local r, last = lg:wait(function(r) return r.sent >= n end, timeout or 30)
    assert(r, "chat clients did not get " .. n .. " messages acked: " ..
           (last and _M.summary(last) or "?"))
    return r
end

local function wait_requests(lg, n)
    local r, last = lg:wait(function(r) return r.requests >= n end, 30)
    assert(r, "HTTP load did not reach " .. n .. " requests: " ..
           (last and last.requests or "?"))
    return r
end

-- After "hold": wait until nothing is in flight (acked and delivered
-- counts stopped moving) and every client has every message; give up after
-- a while (the caller's checks then say what is missing). Returns the
-- final report (the clients are ended).
local function settle(chat, n)
    local prev
    chat:wait(function(r)
        local still = prev and prev.sent == r.sent and
                      prev.delivered == r.delivered
        prev = r
        return still and r.lost == 0 and r.connected == n
    end, 30)
    return chat:finish()
end

local function reconnects(r)
    local n = 0
    for _, cl in ipairs(r.clients) do n = n + cl.disconnects end
    return n
end

--- `luaserv APP stop -g` on host i under HTTP load: does /health say
-- draining, does HAProxy take the host out while it still accepts, does
-- any request fail? The host is started again afterwards.
function _M.drain_stop(c, i, opts)
    opts = opts or {}
    local out = { host = "h" .. i }
    local http = c:loadgen("http", { "--conns", tostring(opts.conns or 4) })
    wait_requests(http, opts.requests or 200)
    local stopper = c:stop_host_async(i)
    local t0 = cluster.now()
    out.draining = cluster.wait_until(function()
        local st, body = cluster.http(c.hosts[i].addr, "GET", "/health", nil, 1)
        return st == 503 and body == "draining\n"
    end, 10, 0.02) and true or false
    out.draining_after = cluster.now() - t0
    out.down = c:wait_status(i, "DOWN", 10)   -- seconds after "draining"
    out.alive_when_down = cluster.alive(c.hosts[i].pid)
    out.stopped = c:reap_host(i, stopper, 30)
    out.stop_seconds = cluster.now() - t0
    local before = http:cmd("report")
    wait_requests(http, before.requests + (opts.requests or 200))
    out.http = http:finish()
    c:start_host(i)
    out.up_again = c:wait_status(i, "UP", 10)
    return out
end

--- `luaserv APP reload` on each host in turn, under HTTP load and with
-- the chat clients sending.
function _M.rolling_reload(c, opts)
    opts = opts or {}
    local n = opts.clients or _M.CLIENTS
    local out = { reloads = {}, status_during = {} }
    local chat = chat_clients(c, n)
    local http = c:loadgen("http", { "--conns", tostring(opts.conns or 4) })
    chat:cmd("send")
    wait_requests(http, opts.requests or 200)
    for round = 1, opts.rounds or 1 do
        for i = 1, 3 do
            local code, text = c:reload_host(i)
            local k = #out.reloads + 1
            out.reloads[k] = { host = "h" .. i, round = round, code = code,
                               output = text }
            out.status_during[k] = (c:status() or {})["h" .. i]
            local before = http:cmd("report")
            wait_requests(http, before.requests + (opts.between or 100))
        end
    end
    chat:wait(function(r) return r.connected == n end, 30)
    wait_sent(chat, chat:cmd("report").sent + (opts.after or 30))
    chat:cmd("hold")
    out.http = http:finish()
    out.chat = settle(chat, n)
    out.reconnects = reconnects(out.chat)
    return out
end

--- kill -9 host i (master and workers) while the chat clients send and an
-- HTTP loop runs; its clients must move to the others. The host is
-- started again afterwards.
function _M.kill_host(c, i, opts)
    opts = opts or {}
    local n = opts.clients or _M.CLIENTS
    local name = "h" .. i
    local out = { host = name }
    local chat, r0 = chat_clients(c, n)
    out.clients_before = hosts_of(r0)
    local http = c:loadgen("http", { "--conns", tostring(opts.conns or 2) })
    chat:cmd("send")
    out.sent_before = wait_sent(chat, opts.before or 30).sent
    out.pids = c:kill_host(i)
    local t_kill = cluster.now()
    out.down = c:wait_status(i, "DOWN", 10)
    assert(out.down, "HAProxy did not take " .. name .. " out")
    out.served_at_down = http:cmd("report").served_by[name] or 0
    local moved = chat:wait(function(r)
        return r.connected == n and not hosts_of(r)[name]
    end, 30)
    assert(moved, "the clients of " .. name .. " did not reconnect elsewhere")
    out.moved = cluster.now() - t_kill
    out.clients_after = hosts_of(moved)
    wait_sent(chat, chat:cmd("report").sent + (opts.after or 60))
    chat:cmd("hold")
    out.http = http:finish()
    out.served_after_down = (out.http.served_by[name] or 0) - out.served_at_down
    out.chat = settle(chat, n)
    c:start_host(i)
    out.up_again = c:wait_status(i, "UP", 10)
    return out
end

-- How many hosts logged text at least more times than before (or than 0).
local function hosts_logged(c, text, before, more)
    local n, counts = 0, {}
    for k, h in ipairs(c.hosts) do
        local _, m = (cluster.readfile(h.log) or ""):gsub(text, "")
        counts[k] = m
        if m >= (before and before[k] or 0) + (more or 1) then n = n + 1 end
    end
    return n, counts
end

local BACK = "chat bus: redis is back"
local RETRY = "chat bus: redis [^\n]* retrying in"

--- Stop redis-server (SIGTERM) while the chat clients send, wait until a
-- sender is told its message did not go in, start it again on the same
-- port and files, and wait until every host's readers are back.
function _M.redis_restart(c, opts)
    opts = opts or {}
    local n = opts.clients or _M.CLIENTS
    local out = {}
    local st, body = cluster.http(c.lb, "POST", "/sessions", '{"user":"bob"}')
    assert(st == 201, "POST /sessions: " .. tostring(st) .. " " ..
           tostring(body))
    local id = body:match('"id":"(%x+)"')
    local _, back0 = hosts_logged(c, BACK)
    local _, retry0 = hosts_logged(c, RETRY)
    local chat = chat_clients(c, n)
    chat:cmd("send")
    out.sent_before = wait_sent(chat, opts.before or 30).sent
    out.stopped_cleanly = c:stop_redis()
    local t_down = cluster.now()
    out.told = chat:wait(function(r) return r.send_errors > 0 end, 30)
        and true or false
    out.told_after = cluster.now() - t_down
    -- down long enough for the readers' back-off to grow (about four
    -- retries per worker: waits of about 0.1, 0.2, 0.4, 0.8 s, the next
    -- one 1.6 s), so that messages go into the stream again while they
    -- still wait
    cluster.wait_until(function()
        return hosts_logged(c, RETRY, retry0, 4 * c.workers) == 3
    end, 30)
    c:start_redis()
    out.down_seconds = cluster.now() - t_down
    local t_up = cluster.now()
    local sent_up = chat:cmd("report").sent
    out.hosts_back = cluster.wait_until(function()
        return hosts_logged(c, BACK, back0) == 3
    end, 30) and 3 or hosts_logged(c, BACK, back0)
    out.back_after = cluster.now() - t_up
    out.sent_while_reconnecting = chat:cmd("report").sent - sent_up
    wait_sent(chat, chat:cmd("report").sent + (opts.after or 60))
    chat:cmd("hold")
    out.chat = settle(chat, n)
    local s2, b2 = cluster.http(c.lb, "GET", "/sessions/" .. id)
    out.session_after = s2 == 200 and b2:match('"user":"bob"') and true or false
    return out
end

return _M
