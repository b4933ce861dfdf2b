-- Installing luaserv: `cmake --install` into a prefix, and the .deb that
-- cpack builds, installed with dpkg into a throwaway root. Both must hold
-- the binary, the Lua modules on Lua 5.4's module path, the man page, the
-- systemd unit naming the installed binary and the examples, and the
-- installed binary must run an app on its own installed modules.
local server = require "helpers.server"
local client = require "helpers.client"

local function sh(cmd)
    local p = assert(io.popen(cmd .. " 2>&1; echo \"rc=$?\""))
    local out = p:read("a")
    p:close()
    local rc = tonumber(out:match("rc=(%d+)\n?$"))
    return rc, out:gsub("rc=%d+\n?$", "")
end

local function must(cmd)
    local rc, out = sh(cmd)
    assert(rc == 0, cmd .. " failed (" .. tostring(rc) .. "):\n" .. out)
    return out
end

local function q(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

local function exists(p)
    local f = io.open(p, "rb")
    if f then f:close() end
    return f ~= nil
end

local function read(p)
    local f = assert(io.open(p, "rb"), "cannot open " .. p)
    local s = f:read("a")
    f:close()
    return s
end

-- The build tree of the binary under test (CPackConfig.cmake is there).
local BIN = server.abspath(server.bin)
local BUILD = BIN:match("^(.*)/[^/]+$")
local have_build = exists(BUILD .. "/CPackConfig.cmake")
-- A LuaJIT build (-DLUASERV_LUA=luajit) installs on LuaJIT's module path
-- and links LuaJIT statically (no Lua package in Depends).
local LUAJIT = exists(BUILD .. "/CMakeCache.txt") and
    read(BUILD .. "/CMakeCache.txt"):find("\nLUASERV_LUA:STRING=luajit\n",
                                          1, true) ~= nil
local LUADIR = LUAJIT and "share/lua/5.1" or "share/lua/5.4"

-- Runs the installed binary on an app; returns what the app's Lua sees.
local function run_installed(bin, app, root)
    local srv = server.start(app, { bin = bin, args = { "-w", "1" },
                                    env = { LUASERV_LUA_DIR = "" },
                                    reload = false })
    local c = client.must_connect(srv.port)
    local got = c:request("where", 10)
    c:close()
    srv:stop()
    assert.is_truthy(got, "no answer from the installed binary")
    local core, redis, kind = got:match("^(%S+) (%S+) (%S+)$")
    assert.are.equal(root .. "/" .. LUADIR .. "/luaserv/init.lua", core)
    assert.are.equal(root .. "/" .. LUADIR .. "/luaserv/redis.lua", redis)
    assert.are.equal("function", kind)
end

local function check_tree(root, unit_bin, unit_etc)
    for _, f in ipairs {
        "bin/luaserv",
        LUADIR .. "/luaserv/init.lua",
        LUADIR .. "/luaserv/redis.lua",
        LUADIR .. "/luaserv/http_client.lua",
        LUADIR .. "/luaserv/meta.lua",
        LUADIR .. "/luaserv/protocols/length.lua",
        "share/man/man1/luaserv.1",
        "lib/systemd/system/luaserv@.service",
        "share/doc/luaserv/README.md",
        "share/doc/luaserv/examples/echo.lua",
    } do
        assert.is_true(exists(root .. "/" .. f), root .. "/" .. f .. " missing")
    end
    local unit = read(root .. "/lib/systemd/system/luaserv@.service")
    assert.is_truthy(unit:find("\nType=notify\n", 1, true), unit)
    assert.is_truthy(unit:find("\nExecStart=" .. unit_bin .. " " .. unit_etc ..
                               "/%i.lua start\n", 1, true), unit)
    assert.is_truthy(unit:find("\nExecReload=" .. unit_bin .. " " ..
                               unit_etc .. "/%i.lua reload\n", 1, true), unit)
    assert.is_nil(unit:find("@", unit:find("%[Unit%]"), true),
                  "unsubstituted @VAR@ in the unit:\n" .. unit)
    -- the man page is roff that man(1) can format
    assert.is_truthy(read(root .. "/share/man/man1/luaserv.1"):find("\n%.TH LUASERV 1 "))
end

describe("packaging", function()
    local tmp
    before_each(function()
        if not have_build then
            assert(os.getenv("CI") == nil,
                   "no CPackConfig.cmake next to " .. BIN .. " in CI")
            pending("LUASERV_BIN is not in a cmake build tree")
        end
        tmp = must("mktemp -d /tmp/luaserv-pkg-XXXXXX"):gsub("%s+$", "")
    end)
    after_each(function()
        server.cleanup()
        if tmp then os.execute("rm -rf " .. q(tmp)) end
    end)

    it("cmake --install puts everything under the prefix and the installed " ..
       "binary runs an app on its installed modules", function()
        if not have_build then return end
        local prefix = tmp .. "/prefix"
        must("cmake --install " .. q(BUILD) .. " --prefix " .. q(prefix))
        check_tree(prefix, prefix .. "/bin/luaserv", prefix .. "/etc/luaserv")
        run_installed(prefix .. "/bin/luaserv",
                      server.abspath("spec/fixtures/apps/whereami.lua"), prefix)
        -- and the shipped example, from where the docs say it is
        local srv = server.start(prefix .. "/share/doc/luaserv/examples/echo.lua",
            { bin = prefix .. "/bin/luaserv", wait_workers = 2, reload = false })
        local c = client.must_connect(srv.port)
        assert.are.equal("installed", c:request("installed", 10))
        c:close()
        srv:stop()
    end)

    it("cpack builds a .deb that depends on Debian packages, and dpkg " ..
       "installs it into a throwaway root where it runs", function()
        if not have_build then return end
        must("cpack --config " .. q(BUILD .. "/CPackConfig.cmake") ..
             " -B " .. q(tmp .. "/out"))
        local deb = must("ls " .. q(tmp .. "/out") .. "/*.deb"):gsub("%s+$", "")
        assert.is_truthy(deb:match("/luaserv_[%d.]+_%w+%.deb$"), deb)

        local fields = must("dpkg-deb -f " .. q(deb) .. " Package Version " ..
                            "Architecture Depends")
        assert.is_truthy(fields:find("Package: luaserv\n", 1, true), fields)
        local depends = assert(fields:match("Depends: ([^\n]+)"), fields)
        local names = {}
        for dep in depends:gmatch("[^,]+") do
            local name = dep:match("^%s*([%w.+-]+)")
            names[#names + 1] = name
            -- every dependency is a real package: installed here, since
            -- this binary runs here
            must("dpkg-query -W -f='${Status}' " .. q(name) ..
                 " | grep -q 'install ok installed'")
        end
        local all = table.concat(names, " ")
        for _, want in ipairs { "libc6", "libevent",
                                LUAJIT and "libc6" or "liblua5.4",
                                "libwslay" } do
            assert.is_truthy(all:find(want, 1, true),
                             want .. " missing from Depends: " .. depends)
        end

        -- install into an empty dpkg database of its own
        local root = tmp .. "/root"
        must("mkdir -p " .. q(root .. "/var/lib/dpkg/info") .. " " ..
             q(root .. "/var/lib/dpkg/updates") .. " " ..
             q(root .. "/var/lib/dpkg/triggers") .. " && touch " ..
             q(root .. "/var/lib/dpkg/status") .. " " ..
             q(root .. "/var/lib/dpkg/available"))
        must("dpkg --root=" .. q(root) .. " --log=/dev/null --force-depends " ..
             "--force-script-chrootless -i " .. q(deb))
        local st = must("dpkg --root=" .. q(root) .. " -s luaserv")
        assert.is_truthy(st:find("Status: install ok installed", 1, true), st)

        check_tree(root .. "/usr", "/usr/bin/luaserv", "/etc/luaserv")
        run_installed(root .. "/usr/bin/luaserv",
                      server.abspath("spec/fixtures/apps/whereami.lua"),
                      root .. "/usr")
        local srv = server.start(root .. "/usr/share/doc/luaserv/examples/echo.lua",
            { bin = root .. "/usr/bin/luaserv", wait_workers = 2, reload = false })
        local c = client.must_connect(srv.port)
        assert.are.equal("from the .deb", c:request("from the .deb", 10))
        c:close()
        srv:stop()

        must("dpkg --root=" .. q(root) .. " --log=/dev/null " ..
             "--force-script-chrootless -r luaserv")
        assert.is_false(exists(root .. "/usr/bin/luaserv"))
    end)
end)
