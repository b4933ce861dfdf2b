---@meta luaserv
--- LuaLS (lua-language-server) type definitions of the `luaserv` API, as
-- built today (docs/api.md is the same API in prose). Editors read this file
-- for completion and checks; it is never loaded by luaserv itself. To use it,
-- add this repository's (or the installed) `lua/` directory to
-- `workspace.library` in your `.luarc.json`.
--
-- Loading it is harmless: it only builds tables of empty functions and
-- returns one. spec/unit/meta_spec.lua checks that every name the runtime
-- registers (src/lua/*.c, lua/luaserv/init.lua) is described here.
--
-- LuaLS reads a ---@field's description from its own line only, hence the
-- long lines; `resp`, `redis`, `redis_client` and `http_client` are built
-- only to carry their annotations.
-- luacheck: no max line length, ignore 241

---The module an app script requires: `local luaserv = require "luaserv"`.
---@class luaserv
---@field _VERSION string The runtime's version, e.g. `"0.1.0"`.
---@field worker luaserv.worker|nil The current worker; `nil` while the master's validator runs the script (and in `check`).
---@field errors luaserv.errors Codes passed to `onError(conn, code, text)`.
---@field null lightuserdata A null value (Redis's nil reply): compare with `==`.
---@field shared table<string, luaserv.shdict> The shared dicts of settings.shared by name (empty in the validator).
---@field onTask? fun(data: string): string Set at the top level (`function luaserv.onTask(data) ... end`): runs each luaserv.task in a task worker (settings.taskWorkers); may wait; its result (a string) or error goes back to the caller.
local luaserv = {}

---The current worker (`luaserv.worker`, and the argument of the `onWorker*` callbacks).
---@class luaserv.worker
---@field id integer Slot number, unique across listeners (the first listener's `0 .. count-1`, the next one's go on); kept by a respawn and across reloads; the address of luaserv.send.
---@field pid integer This worker's process id.
---@field name string The name of the listener this worker serves.
---@field listener string The same name.
---@field generation integer 1 at start, one more at each reload.
---@field stopping false|"stop"|"reload" false while serving; "stop" once the instance stops; "reload" once a new generation replaces this worker.

---Codes passed to `onError(conn, code, text)`.
---@class luaserv.errors
---@field PACKAGE_TOO_BIG integer 1: a message over maxPackageSize; HTTP 413 and 431.
---@field BAD_INPUT integer 2: framing errors, a Lua protocol's `nil, err`, HTTP 400/405/505.
---@field SEND_FAIL integer 3: defined; not passed by any code path today.
---@field CONNECT_FAIL integer 4: an outbound connection failed (refused, unknown host, timeout).
---@field TIMEOUT integer 5: sendTimeout, HTTP headerTimeout/bodyTimeout (408).
luaserv.errors = {
    PACKAGE_TOO_BIG = 1,
    BAD_INPUT = 2,
    SEND_FAIL = 3,
    CONNECT_FAIL = 4,
    TIMEOUT = 5,
}

---Length-header framing for `protocol = { length = ... }` (done in C).
---@class luaserv.length_framing
---@field offset? integer Bytes before the length field, 0-65535 (default 0).
---@field size integer Width of the length field: 1, 2, 4 or 8.
---@field endian? "big"|"little" Default `"big"`.
---@field includesHeader? boolean Whether the value counts the `offset + size` header bytes (default false).
---@field adjust? integer Added to the value (default 0).

---A `protocol` option: declarative framing (`delimiter` or `length`), or a
---protocol written in Lua (`input`, with optional `decode` and `encode`).
---@class luaserv.protocol
---@field delimiter? string 1 to 16 bytes that end each message; `send` appends them.
---@field length? luaserv.length_framing A length header; `send` prepends it when `offset` is 0.
---@field input? fun(buffer: string, conn: luaserv.conn): integer|nil, string? `n > 0`: a packet of n bytes is at the head; `0`: need more; `nil, err`: bad input (onError, close).
---@field decode? fun(packet: string, conn: luaserv.conn): any The message onMessage gets (default: the packet).
---@field encode? fun(msg: any, conn: luaserv.conn): string The bytes `conn:send(msg)` writes (default: msg).

---Options of `luaserv.listen(address, options)`. Unknown keys raise.
---@class luaserv.listen_options
---@field name? string 1-63 printable characters, unique (default: the address).
---@field count? integer Worker processes for this listener, 1-1024 (default 1; `-w N` overrides).
---@field reusePort? boolean One SO_REUSEPORT socket per worker, TCP and UDP (default false).
---@field backlog? integer listen() backlog, 1-65535 (default 1024).
---@field deferAccept? boolean TCP_DEFER_ACCEPT (default true for http:// and websocket://, else false).
---@field maxPackageSize? integer Largest incoming message in bytes (default 10485760; udp:// 65507, at most 65535: larger datagrams are dropped).
---@field maxSendBufferSize? integer Queued output before onBufferFull, bytes (default 1048576).
---@field maxHeaderSize? integer HTTP request line + headers, else 431 (default 16384).
---@field maxBodySize? integer HTTP request body, else 413 (default: maxPackageSize).
---@field idleTimeout? number Seconds without traffic before a close (default 0: none).
---@field sendTimeout? number Seconds without the peer taking output (default 60; 0: none).
---@field headerTimeout? number HTTP: seconds until a request head is complete, else 408 (default 10; 0: none).
---@field bodyTimeout? number HTTP: seconds between two reads of a body, else 408 (default 30; 0: none).
---@field maxConnections? integer Per worker: stop accepting at the limit (default: none).
---@field maxRequests? integer Replace the worker after that many messages (default: never).
---@field maxMemory? integer Replace the worker above that RSS in bytes, at least 1048576 (default: never).
---@field luaMemoryLimit? integer Overrides the setting for this listener's workers: 0, or at least 1048576.
---@field callbackTimeout? number Overrides the setting for this listener's workers: 0, or 0.01-86400 s.
---@field protocol? luaserv.protocol Framing other than the scheme's.
---@field ssl? luaserv.ssl TLS on this listener (required by https:// and wss://).
---@field handshakeTimeout? number TLS: seconds until the handshake is done, else closed (default 10; 0: none).

---The `ssl` listener option. Relative paths are taken from the script's directory.
---@class luaserv.ssl
---@field cert string PEM certificate chain file.
---@field key string PEM private key file (unencrypted).
---@field protocols? string TLS versions, lowest to highest named (default "TLSv1.2 TLSv1.3").
---@field ciphers? string OpenSSL cipher list for TLS 1.2 and below.
---@field sni? table<string, {cert: string, key: string}> More certificates by server name ("*.example.net" matches one label).

---Options and callbacks of `luaserv.connect(address, options)`: the table is
---also the connection's callback table, looked up at each event.
---@class luaserv.connect_options
---@field connectTimeout? number Seconds to connect before onError(CONNECT_FAIL) (default 10; 0: none).
---@field sendTimeout? number Seconds without the peer taking output (default 60; 0: none).
---@field maxPackageSize? integer Largest incoming message in bytes (default 10485760).
---@field maxSendBufferSize? integer Queued output before onBufferFull, bytes (default 1048576).
---@field protocol? luaserv.protocol Framing other than the scheme's.
---@field onConnect? fun(conn: luaserv.conn) The connection is up.
---@field onMessage? fun(conn: luaserv.conn, msg: any) A whole message.
---@field onClose? fun(conn: luaserv.conn) The connection is gone (also after a failed connect).
---@field onError? fun(conn: luaserv.conn, code: integer, text: string) `code` is one of luaserv.errors.
---@field onBufferFull? fun(conn: luaserv.conn) Queued output reached maxSendBufferSize.
---@field onBufferDrain? fun(conn: luaserv.conn) Queued output written out after onBufferFull.

---Process-wide settings: `luaserv.settings{...}`. Unknown keys raise.
---@class luaserv.settings
---@field name? string 1-63 printable characters; accepted, not used yet.
---@field pidFile? string The master's pid file (default `<rundir>/<app>-<hash>.pid`; `-p` overrides).
---@field logFile? string Log file (default stderr; a daemon: `<rundir>/<app>-<hash>.log`; `-l` overrides).
---@field user? string Workers switch to this user when started as root.
---@field group? string Workers switch to this group when started as root.
---@field stopTimeout? number Seconds to drain on a graceful stop or reload, 0-86400 (default 5).
---@field stopDelay? number Seconds a graceful stop serves on (accepting, worker.stopping = "stop") before it drains, 0-3600 (default 0).
---@field logLevel? "debug"|"info"|"warn"|"error" Default "info".
---@field luaMemoryLimit? integer Bytes per worker Lua state: 0, or at least 1048576 (default 1073741824).
---@field callbackTimeout? number Seconds one callback may run: 0, or 0.01-86400 (default 10).
---@field watchdogTimeout? number Seconds without an event-loop turn before the worker is killed: 0, or 1-86400 (default 30).
---@field metrics? string "host:port" where the master serves GET /metrics (Prometheus text format) from the workers' figures in shared memory; unset: no endpoint.
---@field sslTrustedCertificate? string PEM file of CA certificates sock:sslhandshake(..., verify) trusts besides the system's store.
---@field taskWorkers? integer Task worker processes running luaserv.onTask, 0-1024 (default 0).
---@field taskQueue? integer Tasks that may wait for a task worker, 1-1000000 (default 1024); more: luaserv.task returns nil, "queue full".
---@field shared? table<string, integer|string> Shared dicts, `{ NAME = SIZE }`: bytes or "512k", "10m", "1g" (8k to 64g); `luaserv.shared.NAME` in every worker.

---The table `luaserv.listen()` returns: what luaserv resolved, plus the
---app's callbacks, which are looked up at each event.
---@class luaserv.listener
---@field name string The listener's name.
---@field address string The address as given to listen().
---@field count integer Worker processes.
---@field reusePort boolean
---@field maxPackageSize integer
---@field maxSendBufferSize integer
---@field idleTimeout number 0 when none.
---@field maxConnections integer 0 when no limit.
---@field protocol? luaserv.protocol The protocol option, when one was given.
---@field onWorkerStart? fun(worker: luaserv.worker) The worker starts; create timers and outbound connections here. An error makes the worker exit (respawned with back-off).
---@field onWorkerReload? fun(worker: luaserv.worker) This worker is being replaced by a new generation; it drains next.
---@field onWorkerMessage? fun(worker: luaserv.worker, from_id: integer, msg: string) A message from another worker (luaserv.send, luaserv.broadcast).
---@field onWorkerStop? fun(worker: luaserv.worker) The worker stops accepting.
---@field onConnect? fun(conn: luaserv.conn) A connection was accepted.
---@field onMessage? fun(conn: luaserv.conn|luaserv.udp_peer, msg: string|luaserv.http.request|any) A whole message: a string, a decoded value (Lua protocols) or an HTTP request table; on udp:// `(peer, datagram)`.
---@field onClose? fun(conn: luaserv.conn) The connection is gone; exactly once.
---@field onError? fun(conn: luaserv.conn, code: integer, text: string) `code` is one of luaserv.errors; the connection closes after it.
---@field onBufferFull? fun(conn: luaserv.conn) Queued output reached maxSendBufferSize; sends are refused until it drains.
---@field onBufferDrain? fun(conn: luaserv.conn) The queued output has been written out after onBufferFull.
---@field onDrain? fun(conn: luaserv.conn) A graceful stop or reload begins (text://, tcp://, frame://, unix, Lua protocols): say goodbye, close, or leave the connection to end by itself within stopTimeout.
---@field onWebSocketConnect? fun(conn: luaserv.conn, req: luaserv.http.request): boolean|integer|nil A WebSocket handshake, before the 101: `false` refuses (403), 400-599 refuses with that status, anything else accepts.

---An HTTP request, the `msg` of onMessage on http:// listeners.
---@class luaserv.http.request
---@field method string "GET", "POST", ...
---@field url string The request target as sent: "/find?q=a%20b".
---@field path string Its path, not decoded: "/find".
---@field query table<string, string|boolean|string[]> The query decoded; a key without "=" is true, a repeated key an array.
---@field headers table<string, string|string[]> Lower-case names; repeats joined with ", " (cookie "; "); set-cookie is an array.
---@field body string The whole body, "" if none.
---@field version "1.1"|"1.0"

---An HTTP response for `conn:send{...}` on http:// listeners.
---@class luaserv.http.response
---@field status? integer 200-999 (default 200).
---@field headers? table<string, string|number|(string|number)[]> One header line per array element.
---@field body? string|number Default "".
---@field stream? boolean Start a streamed response; send parts with conn:send(part).
---@field done? boolean End a streamed response (with an optional last `body`).

---A WebSocket message for `conn:send{...}`: exactly one of the two fields.
---@class luaserv.ws.message
---@field text? string A text frame.
---@field binary? string A binary frame.

---A connection (accepted, or from luaserv.connect). Methods on a closed
---connection return `false, "closed"`.
---@class luaserv.conn
---@field id integer Unique within the worker; readable after the close.
---@field data table The app's own table, created on first use; may be assigned a table or nil. Other fields cannot be set.
---@field remoteIp string The peer's address ("" on a Unix socket); raises from onClose on.
---@field remotePort integer The peer's port (0 on a Unix socket); raises from onClose on.
---@field localIp string This end's address; raises from onClose on.
---@field localPort integer This end's port; raises from onClose on.
local conn = {}

---Send a message, framed or encoded as the protocol says (text:// appends
---"\n"; HTTP: a response; WebSocket: a text frame, or `{binary = s}`).
---Raises for a value the protocol cannot send (nil, a boolean, ...).
---@param data string|number|luaserv.http.response|luaserv.ws.message|any
---@param raw? boolean true: write data (a string) as it is, without framing or encoding.
---@return boolean ok true when queued.
---@return "closed"|"buffer full"|nil err Why it was refused (the message is dropped).
function conn:send(data, raw) end

---Optionally send data, write what is queued, then close. WebSocket:
---`conn:close(code [, reason])` sends that close code (1000-1003, 1007-1014,
---3000-4999) and a UTF-8 reason of at most 123 bytes.
---@param data? any A last message, sent as conn:send(data) would.
---@return boolean ok
---@return "closed"|nil err
---@overload fun(self: luaserv.conn, code: integer, reason?: string): boolean, "closed"|nil
function conn:close(data) end

---Close now; queued output is dropped.
---@return boolean ok
---@return "closed"|nil err
function conn:destroy() end

---Stop reading from the socket (backpressure).
---@return boolean ok
---@return "closed"|nil err
function conn:pauseRecv() end

---Start reading from the socket again.
---@return boolean ok
---@return "closed"|nil err
function conn:resumeRecv() end

---A timer from luaserv.after or luaserv.every.
---@class luaserv.timer
local timer = {}

---Stop the timer.
---@return boolean was_armed true if it was armed (it will not fire again).
function timer:cancel() end

---Whether the timer is armed (an `after` timer stops being armed when it fires).
---@return boolean
function timer:active() end

---A shared dict (`luaserv.shared.NAME`): OpenResty's ngx.shared.DICT in
---memory every worker shares. Keys: strings of 1-65535 bytes (numbers are
---turned into strings). Values: strings, numbers, booleans; lists.
---@class luaserv.shdict
local shdict = {}

---@param key string
---@return string|number|boolean|nil value nil when missing or expired
---@return integer|string|nil flags_or_err flags when not 0; "value is a list"
function shdict:get(key) end

---Also an expired value not reclaimed yet.
---@param key string
---@return string|number|boolean|nil value
---@return integer|nil flags
---@return boolean|nil stale true if it has expired
function shdict:get_stale(key) end

---Store; evicts least recently used keys when full (forcible true).
---@param key string
---@param value string|number|boolean|nil nil deletes
---@param exptime? number seconds, 0: never
---@param flags? integer 0-4294967295
---@return boolean ok
---@return string|nil err "no memory", "bad value type", "nil key", ...
---@return boolean forcible
function shdict:set(key, value, exptime, flags) end

---As set, but never evicts a key that has not expired ("no memory").
---@param key string
---@param value string|number|boolean|nil
---@param exptime? number
---@param flags? integer
---@return boolean ok
---@return string|nil err
---@return boolean forcible
function shdict:safe_set(key, value, exptime, flags) end

---As set, for a missing or expired key only (else false, "exists").
---@param key string
---@param value string|number|boolean
---@param exptime? number
---@param flags? integer
---@return boolean ok
---@return string|nil err
---@return boolean forcible
function shdict:add(key, value, exptime, flags) end

---add that never evicts.
---@param key string
---@param value string|number|boolean
---@param exptime? number
---@param flags? integer
---@return boolean ok
---@return string|nil err
---@return boolean forcible
function shdict:safe_add(key, value, exptime, flags) end

---As set, for an existing key only (else false, "not found").
---@param key string
---@param value string|number|boolean
---@param exptime? number
---@param flags? integer
---@return boolean ok
---@return string|nil err
---@return boolean forcible
function shdict:replace(key, value, exptime, flags) end

---@param key string
---@return boolean ok always true
function shdict:delete(key) end

---Add to a number; with init a missing key starts at init (expiring after init_ttl).
---@param key string
---@param value number
---@param init? number
---@param init_ttl? number
---@return number|nil new
---@return string|nil err "not found", "not a number", "no memory"
---@return boolean|nil forcible
function shdict:incr(key, value, init, init_ttl) end

---@param key string
---@param value string|number
---@return integer|nil length
---@return string|nil err "value not a list", "no memory", "bad value type"
function shdict:lpush(key, value) end

---@param key string
---@param value string|number
---@return integer|nil length
---@return string|nil err
function shdict:rpush(key, value) end

---@param key string
---@return string|number|nil value nil when missing or empty
---@return string|nil err "value not a list"
function shdict:lpop(key) end

---@param key string
---@return string|number|nil value
---@return string|nil err
function shdict:rpop(key) end

---@param key string
---@return integer|nil length 0 when missing
---@return string|nil err "value not a list"
function shdict:llen(key) end

---@param key string
---@return number|nil seconds left, 0: no expiry
---@return string|nil err "not found"
function shdict:ttl(key) end

---@param key string
---@param exptime number seconds, 0: never
---@return boolean|nil ok
---@return string|nil err "not found"
function shdict:expire(key, exptime) end

---Expire every key (get_stale still sees them until reclaimed).
---@return nil
function shdict:flush_all() end

---Free expired keys, at most max (0 or none: all).
---@param max? integer
---@return integer freed
function shdict:flush_expired(max) end

---Keys that have not expired, most recently used first.
---@param max? integer default 1024, 0: all
---@return string[]
function shdict:get_keys(max) end

---@return integer bytes the declared size
function shdict:capacity() end

---@return integer bytes in free blocks
function shdict:free_space() end

---Send a string (up to 1 MiB; longer raises) to the worker with that id
---(ids are unique across listeners); never blocks. Only in a worker.
---@param worker_id integer
---@param msg string
---@return boolean|nil ok
---@return string|nil err "queue full", "no such worker"
function luaserv.send(worker_id, msg) end

---Send a string to every worker of every listener, this one included.
---@param msg string
---@return boolean|nil ok
---@return string|nil err "queue full" (the others got it)
function luaserv.broadcast(msg) end

---Run data through luaserv.onTask in a task worker and wait for its
---result (only where a callback may wait).
---@param data string up to 1 MiB
---@param timeout? number seconds (default 60)
---@return string|nil result
---@return string|nil err "queue full", "timeout", "task failed: <msg>", "task worker died"
function luaserv.task(data, timeout) end

---A Lua value as JSON text (lua-cjson); luaserv.null is JSON null.
---@param value any
---@return string|nil text
---@return string|nil err a function, a userdata other than luaserv.null, a cycle
function luaserv.encode(value) end

---JSON text as a Lua value (lua-cjson); JSON null is luaserv.null.
---@param text string
---@return any value nil when the text is not JSON
---@return string|nil err
function luaserv.decode(text) end

---Declare a listener. Only at the top level of the script; raises on a bad
---address, a bad or unknown option, a duplicate name or address.
---@param address string "text://127.0.0.1:9000", "tcp://", "frame://", "http://", "websocket://" (or "ws://"), "unix:///path", "text+unix:///path", ...
---@param options? luaserv.listen_options
---@return luaserv.listener
function luaserv.listen(address, options) end

---Process-wide settings, at the top level of the script. Raises on an
---unknown or bad setting.
---@param settings luaserv.settings
function luaserv.settings(settings) end

---Write a log line. With arguments after `fmt`, `fmt` is a string.format
---pattern for them; without, the message is written as it is.
---Raises on an unknown level or a bad format.
---@param level "debug"|"info"|"warn"|"error"
---@param fmt string
---@param ... any
function luaserv.log(level, fmt, ...) end

---Iterate this worker's open connections of a listener (a snapshot: the
---loop body may send, close or destroy freely). Yields nothing for a
---listener this worker does not serve.
---@param listener luaserv.listener
---@return fun(): luaserv.conn|nil iterator for a generic `for`.
function luaserv.connections(listener) end

---A one-shot timer. Only in a worker (onWorkerStart or a callback); raises
---at the top level and on a bad number of seconds (0 to 1e9).
---@param seconds number
---@param fn fun(timer: luaserv.timer)
---@return luaserv.timer
function luaserv.after(seconds, fn) end

---A periodic timer (every `seconds`, at least 0.001). Only in a worker; an
---error in fn is logged and the timer keeps running.
---@param seconds number
---@param fn fun(timer: luaserv.timer)
---@return luaserv.timer
function luaserv.every(seconds, fn) end

---An outbound connection; returns at once, sends are queued until it is up.
---tcp://, text://, frame:// (host names resolved without blocking) and the
---unix forms; http:// and websocket:// raise. Only in a worker.
---A failure calls onError(conn, luaserv.errors.CONNECT_FAIL, text), then onClose.
---@param address string
---@param options? luaserv.connect_options
---@return luaserv.conn
function luaserv.connect(address, options) end

---Wait `seconds` (0 to 1e9); the worker serves others meanwhile. Only in a
---callback, a timer or onWorkerStart (each runs in a coroutine); raises
---elsewhere (the top level, onWebSocketConnect, a protocol function).
---@param seconds number
function luaserv.sleep(seconds) end

---A TCP or unix-socket cosocket (OpenResty's ngx.socket.tcp). Only in a
---worker; its methods that wait may be called where luaserv.sleep may.
---@return luaserv.tcp
function luaserv.tcp() end

---A cosocket from `luaserv.tcp()`. Failures return nil and a short text
---("timeout", "closed", "connection refused", "socket busy", ...).
---@class luaserv.tcp
local tcp = {}

---Connect to host:port (names resolved without blocking) or to
---"unix:/path" (then opts comes second); an idle connection of the same
---pool is taken from the keep-alive pool first. Connecting a connected
---socket closes its old connection.
---@param host string
---@param port? integer|{pool?: string}
---@param opts? {pool?: string} `pool`: the keep-alive pool's name (1-299 bytes) instead of "host:port".
---@return 1|nil ok
---@return string|nil err "connection refused", "timeout", "<host> could not be resolved (host not found)", "socket busy", ...
---@overload fun(self: luaserv.tcp, path: string, opts?: {pool?: string}): 1|nil, string|nil
function tcp:connect(host, port, opts) end

---Send all of data (a string, a number or an array of strings).
---@param data string|number|(string|number)[]
---@return integer|nil bytes
---@return string|nil err "timeout" (the socket is closed), "closed", "not connected", "socket busy"
function tcp:send(data) end

---Receive a line ("*l", the default: without its newline, a CR before it
---dropped), everything until the peer closes ("*a") or exactly n bytes.
---A read timeout leaves the socket open; other failures close it. A line
---over 4 MiB without a newline: nil, "line too long (...)".
---@param pattern? "*l"|"*a"|integer
---@return string|nil data
---@return string|nil err "timeout", "closed", "not connected", "socket busy", "line too long (...)"
---@return string|nil partial what arrived before the failure
function tcp:receive(pattern) end

---An iterator that returns the data before the next `pattern` (consuming
---the pattern), or nil, err, partial.
---@param pattern string
---@return fun(): string|nil, string|nil, string|nil
function tcp:receiveuntil(pattern) end

---Close the connection.
---@return 1|nil ok
---@return string|nil err
function tcp:close() end

---Put the connection in the worker's keep-alive pool for its host:port
---(or its `{pool = name}`); the socket object is closed afterwards. An
---idle pooled connection is dropped when the peer closes or sends, or
---after idle_ms. nil, "unread data in buffer" (and closed) when data was
---received and not read.
---@param idle_ms? integer how long it may stay idle (default 60000; 0: no limit)
---@param pool_size? integer idle connections kept for that pool (default 30)
---@return 1|nil ok
---@return string|nil err
function tcp:setkeepalive(idle_ms, pool_size) end

---How many times this connection was taken from the pool (0: fresh).
---@return integer|nil n
---@return string|nil err
function tcp:getreusedtimes() end

---The connect, send and read timeouts at once, in milliseconds (0: none).
---@param ms number
function tcp:settimeout(ms) end

---@param connect_ms number
---@param send_ms number
---@param read_ms number
function tcp:settimeouts(connect_ms, send_ms, read_ms) end

---TLS on the connected socket (waits, with the connect timeout). A
---connection from the pool that speaks TLS already returns at once.
---@param reused_session? luaserv.ssl_session|false A session to resume; false: return true instead of a session.
---@param server_name? string SNI, and the name the certificate must match with verify.
---@param verify? boolean Check the certificate against the system's CA store and sslTrustedCertificate.
---@return luaserv.ssl_session|true|nil session
---@return string|nil err "certificate verify failed: 18: self-signed certificate", "handshake failed: ...", "timeout", ...
function tcp:sslhandshake(reused_session, server_name, verify) end

---A TLS session from sock:sslhandshake, for resuming the next one.
---@class luaserv.ssl_session

---A connected datagram cosocket (OpenResty's ngx.socket.udp). Only in a
---worker; setpeername (with a name) and receive wait where luaserv.sleep may.
---@return luaserv.udp
function luaserv.udp() end

---@class luaserv.udp
local udp = {}

---Set the peer: host and port (a name is resolved without blocking) or
---"unix:/path" (a datagram socket).
---@param host string
---@param port? integer
---@return 1|nil ok
---@return string|nil err
function udp:setpeername(host, port) end

---Send one datagram; nil, "buffer full" when the socket cannot take it now.
---@param data string
---@return 1|nil ok
---@return string|nil err
function udp:send(data) end

---Wait for the next datagram (at most size bytes, default 65536).
---@param size? integer
---@return string|nil datagram
---@return string|nil err "timeout", "connection refused", ...
function udp:receive(size) end

---@return 1|nil ok
---@return string|nil err
function udp:close() end

---receive's timeout in milliseconds (0: none; default 60000).
---@param ms number
function udp:settimeout(ms) end

---The sender of a datagram on a udp:// listener: `onMessage(peer, datagram)`.
---`tostring(peer)` is "127.0.0.1:5678" ("[::1]:5678"); two peers are `==`
---when address and port are.
---@class luaserv.udp_peer
---@field address string The sender's address, "127.0.0.1" or "::1".
---@field port integer The sender's port.
local udp_peer = {}

---Answer the peer: one datagram from the listener's socket. Never waits.
---@param data string|number
---@return true|nil ok
---@return string|nil err "would block" (send buffer full), "message too long", ...
function udp_peer:send(data) end

---`require "luaserv.protocols.length"`: length-prefixed binary messages as
---a Lua protocol; the module itself is the 4-byte big-endian form with the
---header not counted.
---@class luaserv.protocols.length: luaserv.protocol
---@field size 1|2|4|8
---@field endian "big"|"little"
---@field includesHeader boolean
local length = {}

---A protocol for another header layout. Raises on bad options.
---@param opts? { size?: 1|2|4|8, endian?: "big"|"little", includesHeader?: boolean }
---@return luaserv.protocols.length
function length.new(opts) end

---`require "luaserv.protocols.resp"`: Redis' RESP2 as a Lua protocol.
---@class luaserv.protocols.resp: luaserv.protocol
---@field null table The null bulk string / null array.
---@field MAX_DEPTH integer Arrays nest at most this deep (8).
---@field MAX_ELEMENTS integer Elements per array (1048576).
---@field MAX_INLINE integer Bytes of an inline command line (65536).
local resp = {}

---A simple-string reply, "+s".
---@param s string
---@return { status: string }
function resp.status(s) end

---An error reply, "-s".
---@param s string
---@return { err: string }
function resp.error(s) end

---Whether v is an error reply (decoded, or made by resp.error).
---@param v any
---@return boolean
function resp.is_error(v) end

---Options of `redis.new(opts)` (`require "luaserv.redis"`). Other keys are ignored; bad values raise.
---@class luaserv.redis.options
---@field host? string Address or name (default "127.0.0.1").
---@field port? integer 1-65535 (default 6379).
---@field path? string A unix socket path, instead of host and port.
---@field timeout? number Milliseconds for the connect and each send and read (default the cosocket's, 60000).
---@field password? string AUTH on a fresh connection.
---@field user? string AUTH user password (Redis 6 ACLs); needs password.
---@field db? integer SELECT on a fresh connection when not 0 (default 0).

---`require "luaserv.redis"`: a RESP2 Redis client on cosockets, with
---lua-resty-redis's names. Its calls that talk to Redis wait, so they are
---made where a callback may wait.
---@class luaserv.redis
---@field _VERSION string "0.1.0".
---@field MAX_BULK integer The largest bulk string a reply may carry (536870912).
---@field null lightuserdata `luaserv.null`: a null bulk string or null array.
---@field methods table<string, function> The client's methods (commands made on first use are added).
---@field mt table The clients' metatable.
local redis = {}

---A client; nothing is connected yet. `redis:new(opts)` works too.
---@param opts? luaserv.redis.options
---@return luaserv.redis.client
function redis.new(opts) end

---{k1, v1, k2, v2, ...} (what HGETALL returns) as {k1 = v1, k2 = v2}.
---@param t any[]
---@return table
function redis.array_to_hash(t) end

---A Redis client from `redis.new`. Any other method name is a Redis
---command, upper-cased: `r:get(k)`, `r:set(k, v, "EX", 30)`,
---`r:hmget(h, "a", "b")`; arguments are strings or numbers. A command
---returns the reply (a status string, an integer, a string, `luaserv.null`,
---an array; error replies inside arrays as `{false, "ERR ..."}`), or nil
---and Redis' error text ("ERR ...", the connection stays usable), or nil
---and a failure ("timeout", "closed", "not connected", "subscribed
---state", "protocol error: ...": the connection is then closed).
---@class luaserv.redis.client
---@field [string] fun(self: luaserv.redis.client, ...: string|number): any, string?
local redis_client = {}

---Connect, or take a connection from the worker's pool (pooled apart by
---address, user, password and db); AUTH and SELECT on a fresh one.
---@return 1|nil ok
---@return string|nil err The cosocket's, or the error reply of AUTH or SELECT.
function redis_client:connect() end

---Connect, send and read timeouts at once, in ms (raises when negative).
---@param ms number
---@return 1
function redis_client:set_timeout(ms) end

---@param connect_ms number
---@param send_ms number
---@param read_ms number
---@return 1
function redis_client:set_timeouts(connect_ms, send_ms, read_ms) end

---Put the connection into the worker's keep-alive pool; the client is
---disconnected afterwards.
---@param idle_ms? integer Idle time in the pool (default 60000; 0: no limit).
---@param pool_size? integer Idle connections kept for this pool (default 30).
---@return 1|nil ok
---@return string|nil err "not connected", "subscribed state", or the cosocket's.
function redis_client:set_keepalive(idle_ms, pool_size) end

---How many times the current connection had been taken from the pool.
---@return integer|nil n
---@return string|nil err "not connected"
function redis_client:get_reused_times() end

---@return 1|nil ok
---@return string|nil err "not connected", or the cosocket's.
function redis_client:close() end

---Queue the next commands instead of sending them (they return 1).
---@return 1
function redis_client:init_pipeline() end

---Drop the queued commands.
---@return 1
function redis_client:cancel_pipeline() end

---Send the queued commands in one write and read all their replies.
---@return any[]|nil replies One per command; error replies as `{false, "ERR ..."}`.
---@return string|nil err "no pipeline", "not connected", or a failure of the connection.
function redis_client:commit_pipeline() end

---Subscribe to channels.
---@param channel string
---@param ... string
---@return table|nil confirmation `{"subscribe", ch, count}`; an array of them for several channels.
---@return string|nil err
function redis_client:subscribe(channel, ...) end

---Subscribe to channel patterns.
---@param pattern string
---@param ... string
---@return table|nil confirmation `{"psubscribe", pat, count}`; an array of them for several.
---@return string|nil err
function redis_client:psubscribe(pattern, ...) end

---Leave the given channels, or all of them.
---@param ... string
---@return table|nil confirmation
---@return string|nil err
function redis_client:unsubscribe(...) end

---Leave the given patterns, or all of them.
---@param ... string
---@return table|nil confirmation
---@return string|nil err
function redis_client:punsubscribe(...) end

---The next message on a subscribed connection: `{"message", ch, payload}`
---or `{"pmessage", pat, ch, payload}`.
---@return table|nil reply
---@return string|nil err "not subscribed"; "timeout" (nothing came: still subscribed); else the connection is closed.
function redis_client:read_reply() end

---{k1, v1, k2, v2, ...} as {k1 = v1, k2 = v2}.
---@param t any[]
---@return table
function redis_client:array_to_hash(t) end

---Options of `http.request(opts)` (`require "luaserv.http_client"`).
---@class luaserv.http_client.request
---@field url string Required: "http://host[:port]/path?query"; https:// gives nil, "unsupported scheme 'https'".
---@field method? string Default "GET", or "POST" when a body is given.
---@field headers? table<string, string|number|(string|number)[]> One header line per array element.
---@field body? string|string[] Sent as it is, with its Content-Length.
---@field timeout? number Milliseconds for the connect and each send and read (default the cosocket's, 60000).
---@field keepalive? boolean Pool the connection when the response allows it (default true).
---@field keepaliveTimeout? number Milliseconds idle in the pool (default 60000).
---@field keepalivePool? integer Idle connections kept per host:port (default 32).
---@field maxBodySize? integer Longest response body in bytes (default 67108864).

---A response of `http.request`.
---@class luaserv.http_client.response
---@field status integer
---@field reason string "OK"
---@field version string "1.1" or "1.0"
---@field headers table<string, string> Lower-case names; repeated headers joined with ", ".
---@field body string "" for HEAD, 1xx, 204 and 304.

---`require "luaserv.http_client"`: a small HTTP/1.1 client on cosockets.
---@class luaserv.http_client
---@field _VERSION string "0.1.0".
---@field MAX_BODY_SIZE integer Default maxBodySize (67108864).
---@field MAX_HEAD_SIZE integer Longest response head in bytes (65536).
---@field MAX_HEADERS integer Most response header lines (100).
---@field KEEPALIVE_TIMEOUT integer Default keepaliveTimeout (60000 ms).
---@field KEEPALIVE_POOL integer Default keepalivePool (32).
local http_client = {}

---Make a request and read the whole response; waits, so only where a
---callback may wait. Raises on wrong option types and bad header names or
---values.
---@param opts luaserv.http_client.request
---@return luaserv.http_client.response|nil res
---@return string|nil err "connection refused", "timeout", "closed", "bad url: ...", "unsupported scheme '...'", "bad response: ...", "response head too large", "response body too large (over N bytes)".
function http_client.request(opts) end

---Split an http:// URL.
---@param url string
---@return string|nil scheme "http", or nil
---@return string|integer|nil host or the error text
---@return integer|nil port
---@return string|nil path With the query; "/" when empty.
---@return string|nil host_header
function http_client.parse_url(url) end

return luaserv
