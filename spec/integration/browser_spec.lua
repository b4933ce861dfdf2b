-- examples/ws_chat.lua in a real browser: Debian's headless Chromium, driven
-- by playwright-core from npm (spec/browser/chat.mjs), opens the page the
-- example serves in two tabs that chat through it; a screenshot of one tab
-- is kept as a test artefact in spec/artifacts/ws_chat.png.
--
-- Needs /usr/bin/chromium (or $CHROMIUM), node >= 18 and spec/browser's
-- node_modules: .ci/deps installs all three (npm ci --prefix spec/browser);
-- this spec runs that npm ci itself when node_modules is missing, which
-- needs the npm registry (not there inside .ci/run's network namespace).
-- Nothing is skipped: a missing piece is a failure that names it.
local server = require "helpers.server"
local cjson = require "cjson"

local shquote = server.shquote
local DIR = "spec/browser"
local SCRIPT = DIR .. "/chat.mjs"
local ARTIFACT_DIR = "spec/artifacts"
local ARTIFACT = ARTIFACT_DIR .. "/ws_chat.png"
local CHROMIUM = os.getenv("CHROMIUM") or "/usr/bin/chromium"
local PNG_MAGIC = "\137PNG\r\n\26\n"

local function sh(cmd)
    local ok, how, code = os.execute(cmd)
    if how == "exit" then return code end
    return ok and 0 or 128 + (code or 0)
end

local function executable(path)
    return sh("test -x " .. shquote(path)) == 0
end

-- Run cmd with stdout and stderr to files of their own; returns the exit
-- code, stdout, stderr.
local function run(cmd, env)
    local base = os.tmpname()
    local prefix = ""
    for k, v in pairs(env or {}) do
        prefix = prefix .. k .. "=" .. shquote(v) .. " "
    end
    local code = sh(string.format("%s%s </dev/null >%s 2>%s", prefix, cmd,
                                  shquote(base .. ".out"),
                                  shquote(base .. ".err")))
    local out = server.readfile(base .. ".out") or ""
    local err = server.readfile(base .. ".err") or ""
    os.remove(base .. ".out")
    os.remove(base .. ".err")
    os.remove(base)
    return code, out, err
end

local function copy(from, to)
    local data = assert(server.readfile(from))
    local f = assert(io.open(to, "wb"))
    assert(f:write(data))
    assert(f:close())
end

-- Width and height from a PNG's IHDR chunk.
local function png_size(data)
    assert(data:sub(13, 16) == "IHDR", "no IHDR chunk first")
    return string.unpack(">I4>I4", data, 17)
end

local seq = 0

describe("examples/ws_chat.lua in headless Chromium", function()
    local node

    setup(function()
        assert(executable(CHROMIUM), CHROMIUM .. " is missing: install " ..
               "Debian's chromium (bash .ci/deps does), or point CHROMIUM " ..
               "at a Chromium binary")
        node = server.capture("command -v node 2>/dev/null")
        assert(node ~= "", "node is missing: install Node.js >= 18 and npm " ..
               "(bash .ci/deps does)")
        local v = server.capture(shquote(node) .. " --version 2>&1")
        local major = tonumber(v:match("^v(%d+)%."))
        assert(major and major >= 18, "playwright-core 1.61 needs " ..
               "Node.js >= 18; " .. node .. " is " .. v)

        if not server.readfile(DIR .. "/node_modules/playwright-core/" ..
                               "package.json") then
            local npm = server.capture("command -v npm 2>/dev/null")
            assert(npm ~= "", DIR .. "/node_modules is missing and so is " ..
                   "npm: install npm, or run bash .ci/deps")
            local code, out, err = run(string.format(
                "timeout -k 5 300 %s ci --prefix %s --no-audit --no-fund",
                shquote(npm), shquote(DIR)),
                { PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD = "1" })
            assert(code == 0, "npm ci --prefix " .. DIR .. " failed (exit " ..
                   code .. "; it needs the npm registry, which .ci/deps " ..
                   "reaches before the suite's network namespace):\n" ..
                   server.tail(out .. err))
        end
    end)

    after_each(function() server.cleanup() end)

    it("two tabs exchange messages; a screenshot is kept", function()
        local srv = server.start("examples/ws_chat.lua", { wait_workers = 1 })
        seq = seq + 1
        local shot = string.format("%s/luaserv-spec-%s-browser-%d.png",
                                   os.getenv("TMPDIR") or "/tmp",
                                   server.session, seq)
        os.remove(shot)
        finally(function() os.remove(shot) end)
        local url = "http://127.0.0.1:" .. srv.port .. "/"
        -- tagged like a server, so that server.cleanup() finds (and
        -- reports) a node or chromium process left behind
        local tag = server.session .. "-browser-" .. seq
        local code, out, err = run(string.format(
            "timeout -k 5 120 %s %s %s %s", shquote(node), shquote(SCRIPT),
            shquote(url), shquote(shot)),
            { CHROMIUM = CHROMIUM, LUASERV_TEST_ID = tag })
        local line = out:match("([^\n]*)\n?$")
        local ok, res = pcall(cjson.decode, line)
        assert(ok and type(res) == "table", "chat.mjs (exit " .. code ..
               ") printed no JSON line:\n" .. out .. "\n" .. err)
        local report = "chat.mjs (exit " .. code .. "): " .. line .. "\n" ..
                       err
        assert.is_true(res.ok, report)
        assert.are.equal(0, code, report)
        assert.is_true(res.a_to_b, report)
        assert.is_true(res.b_to_a, report)
        assert.are.same({}, res.page_errors, report)

        -- both tabs saw both messages, in the order they were sent
        for _, tab in ipairs { res.a_messages, res.b_messages } do
            local a, b
            for i, text in ipairs(tab) do
                if text:match("^alice: hello from A ") then a = i end
                if text:match("^bob: hi A, B here ") then b = i end
            end
            assert.is_truthy(a and b and a < b, report)
        end
        assert.truthy(res.user_agent:find("Chrome/", 1, true), report)

        -- Chromium and node are gone
        assert.is_truthy(server.wait_until(function()
            return #server.tagged(tag) == 0
        end, 10), "browser processes left: " ..
           table.concat(server.tagged(tag), ","))

        -- the screenshot: a PNG of the 800x600 page, with something on it
        local png = server.readfile(shot)
        assert(png, "no screenshot at " .. shot)
        assert.are.equal(PNG_MAGIC, png:sub(1, 8))
        assert.are.equal(#png, res.screenshot_bytes)
        local w, h = png_size(png)
        assert.is_true(w == 800 and h >= 600 and h <= 4000,
                       string.format("screenshot is %dx%d", w, h))
        -- a blank page compresses to a few KB; this one, with its
        -- messages, to tens of KB
        assert.is_true(#png > 8000 and #png < 5e6,
                       "screenshot of " .. #png .. " bytes")

        assert.are.equal(0, sh("mkdir -p " .. shquote(ARTIFACT_DIR)))
        copy(shot, ARTIFACT)
        assert.are.equal(PNG_MAGIC, server.readfile(ARTIFACT):sub(1, 8))

        assert.are.equal(0, srv:stop())
    end)
end)
