-- The host's settings, from the environment (the same app file runs on
-- every host): where it listens, its name, where Redis is.
local function env(name, default)
    local v = os.getenv(name)
    if v == nil or v == "" then return default end
    return v
end

local listen = env("CLUSTER_LISTEN", "127.0.0.1:8080")
local redis_host, redis_port = env("CLUSTER_REDIS", "127.0.0.1:6379")
    :match("^(.+):(%d+)$")
assert(redis_host, "CLUSTER_REDIS must be host:port")

return {
    listen = listen,
    host = env("CLUSTER_HOST", listen),         -- this host's name in replies
    redis_host = redis_host,
    redis_port = tonumber(redis_port),
    workers = tonumber(env("CLUSTER_WORKERS", "2")),
    stop_delay = tonumber(env("CLUSTER_STOP_DELAY", "2")),
    redis_timeout = 1000,                        -- ms, for each command
}
