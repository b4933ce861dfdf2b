-- lua/luaserv/meta.lua: the LuaLS definitions of the luaserv API. The file
-- must compile and load harmlessly, and describe every name the runtime
-- registers. Those names are read from the sources when the spec runs (the
-- luaL_Reg tables and lua_setfield calls of src/**/*.c, the callback and
-- option names the C code looks up, lua/luaserv/init.lua's exports), so a
-- name added to the API without its definition in meta.lua fails here.
-- The C files are found by content, not by path: src/ is being reorganised.

local META = "lua/luaserv/meta.lua"

-- Registered names that meta.lua spells differently, each with its reason.
local SKIP = {
    version = "exported by init.lua as luaserv._VERSION",
}

local function read(path)
    local f = assert(io.open(path, "rb"))
    local s = f:read("a")
    f:close()
    return s
end

local function set(list)
    local s = {}
    for _, v in ipairs(list) do s[v] = true end
    return s
end

local function sorted_keys(t)
    local out = {}
    for k in pairs(t) do out[#out + 1] = k end
    table.sort(out)
    return out
end

local function c_files(ext)
    local p = assert(io.popen("find src -name '*." .. (ext or "c") ..
                              "' -type f 2>/dev/null | sort"))
    local files = {}
    for line in p:lines() do files[#files + 1] = line end
    p:close()
    return files
end

-- Macros naming a metatable, from every C file and header:
-- #define CONN_MT "luaserv.conn" gives macros.CONN_MT = "luaserv.conn".
local function mt_macros(paths)
    local macros = {}
    for _, path in ipairs(paths) do
        for name, mt in read(path):gmatch('#define%s+([%w_]+)%s+"(luaserv%.[%w_]+)"') do
            macros[name] = mt
        end
    end
    return macros
end

-- meta.lua as classes: name -> { fields = set, funcs = name -> annotated }.
-- A `local x = {}` right after a ---@class binds x to it, so that
-- `function x.f` / `function x:f` are that class's; a function counts as
-- annotated when a ---@ line is in the comment block just above it.
local function parse_meta(text)
    local classes, var_class = {}, {}
    local current, pending
    local block = {}
    for line in (text .. "\n"):gmatch("(.-)\r?\n") do
        local cls = line:match("^%-%-%-@class%s+([%w_.]+)")
        if cls then
            current, pending = cls, cls
            classes[cls] = classes[cls] or { fields = {}, funcs = {} }
        end
        local field = line:match("^%-%-%-@field%s+([%w_]+)%??%s")
        if field and current then
            classes[current].fields[field] = true
        end
        local var = line:match("^local%s+([%w_]+)%s*=")
        if var and pending then
            var_class[var], pending = pending, nil
        end
        local v, fname = line:match("^function%s+([%w_]+)[.:]([%w_]+)%s*%(")
        if v and var_class[v] then
            local annotated = false
            for _, l in ipairs(block) do
                if l:match("^%-%-%-@") then annotated = true end
            end
            classes[var_class[v]].funcs[fname] = annotated
        end
        if line:match("^%-%-%-") then
            block[#block + 1] = line
        else
            block = {}
        end
    end
    return classes
end

-- The names the C sources register. Per file: the metatables it defines
-- ("luaserv.conn"); its luaL_Reg tables (a *method* table belongs to the
-- file's metatable, a *meta* table holds metamethods, any other is module
-- functions); lua_pushcfunction(L, l<type>_<name>) + lua_setfield(L, -2,
-- "name") (module functions such as after/every); the keys compared with
-- strcmp(k, "...") (properties in a file with a metatable, options and
-- settings otherwise); lua_setfield names in the file that opens
-- luaserv.core; and every string literal that is a callback name.
local function parse_c(files, macros)
    local r = { module = {}, methods = {}, props = {}, options = {},
                core_fields = {}, callbacks = {}, unowned = {} }
    macros = macros or mt_macros(files)
    for _, path in ipairs(files) do
        local src = read(path)
        -- the metatables this file defines or makes: by #define, or named
        -- (literally or by a macro) in luaL_newmetatable
        local mts, n = {}, 0
        for mt in src:gmatch('#define%s+[%w_]+%s+"(luaserv%.[%w_]+)"') do
            mts[mt] = true
        end
        for arg in src:gmatch('luaL_newmetatable%(%s*L%s*,%s*([^)]-)%s*%)') do
            local mt = arg:match('^"(luaserv%.[%w_]+)"$') or macros[arg]
            if mt then mts[mt] = true end
        end
        for _ in pairs(mts) do n = n + 1 end
        local mt = n == 1 and next(mts) or nil
        for tname, body in src:gmatch("luaL_Reg%s+([%w_]+)%s*%[%]%s*=%s*(%b{})") do
            for name in body:gmatch('{%s*"([%w_]+)"%s*,') do
                if tname:find("meta") or name:find("^__") then -- luacheck: ignore 542
                    -- metamethods: not API names
                elseif tname:find("method") then
                    if mt then
                        r.methods[mt] = r.methods[mt] or {}
                        r.methods[mt][name] = path
                    else
                        r.unowned[#r.unowned + 1] = path .. ": " .. tname .. "." .. name
                    end
                else
                    r.module[name] = path
                end
            end
        end
        for name in src:gmatch('lua_pushcfunction%(%s*L%s*,%s*l%a+_[%w_]+%s*%);%s*'
                               .. 'lua_setfield%(%s*L%s*,%s*%-2%s*,%s*"([%w_]+)"%s*%)') do
            if not name:find("^__") then r.module[name] = path end
        end
        for key in src:gmatch('strcmp%(%s*k%s*,%s*"([%w_]+)"%s*%)') do
            if mt then
                r.props[mt] = r.props[mt] or {}
                r.props[mt][key] = path
            else
                r.options[key] = path
            end
        end
        if src:find("luaopen_luaserv_core", 1, true) then
            for name in src:gmatch('lua_setfield%(%s*L%s*,%s*%-2%s*,%s*"([%w_]+)"%s*%)') do
                r.core_fields[name] = path
            end
        end
        for name in src:gmatch('"(on%u%w+)"') do
            r.callbacks[name] = path
        end
    end
    return r
end

-- The keys of the table lua/luaserv/init.lua returns, loaded against a
-- luaserv.core stand-in that answers every name.
local function init_exports()
    local core = setmetatable({}, { __index = function() return function() end end })
    local saved_core, saved = package.loaded["luaserv.core"], package.loaded["luaserv"]
    package.loaded["luaserv.core"] = core
    local chunk = assert(loadfile("lua/luaserv/init.lua"))
    local ok, m = pcall(chunk)
    package.loaded["luaserv.core"], package.loaded["luaserv"] = saved_core, saved
    assert(ok, m)
    local names = {}
    for k in pairs(m) do names[k] = "lua/luaserv/init.lua" end
    return names
end

-- Names (name -> where registered) that none of the classes has as a
-- field or an annotated function: "name (where)" strings, sorted.
local function missing(classes, class_names, names)
    local out = {}
    for _, name in ipairs(sorted_keys(names)) do
        local found = SKIP[name] ~= nil
        for _, cn in ipairs(class_names) do
            local c = classes[cn]
            if c and (c.fields[name] or c.funcs[name]) then found = true end
        end
        if not found then out[#out + 1] = name .. " (" .. names[name] .. ")" end
    end
    return out
end

-- Functions of a class that meta.lua defines without a ---@ annotation.
local function unannotated(classes, cn, names)
    local out = {}
    local c = classes[cn] or { funcs = {} }
    for _, name in ipairs(sorted_keys(names)) do
        if c.funcs[name] == false then out[#out + 1] = name end
    end
    return out
end

describe("lua/luaserv/meta.lua", function()
    local text, classes, c

    setup(function()
        text = read(META)
        classes = parse_meta(text)
        local headers = c_files("h")
        for _, f in ipairs(c_files()) do headers[#headers + 1] = f end
        c = parse_c(c_files(), mt_macros(headers))
    end)

    describe("the file", function()
        it("compiles as Lua 5.4 and is a ---@meta file", function()
            local chunk, err = loadfile(META)
            assert.is_function(chunk, err)
            assert.truthy(text:match("^%-%-%-@meta"), "first line is not ---@meta")
        end)

        it("loads without touching luaserv or the globals", function()
            local before = {}
            for k in pairs(_G) do before[k] = true end
            local loaded = package.loaded["luaserv"]
            local m = assert(loadfile(META))()
            assert.is_table(m)
            assert.is_function(m.listen)
            assert.is_nil(m.listen("text://127.0.0.1:1"))   -- an empty stub
            assert.are.equal(loaded, package.loaded["luaserv"])
            for k in pairs(_G) do
                assert.truthy(before[k], "meta.lua set the global " .. k)
            end
        end)

        it("declares the classes of the API", function()
            for _, cn in ipairs { "luaserv", "luaserv.listener", "luaserv.conn",
                                  "luaserv.timer", "luaserv.worker", "luaserv.errors",
                                  "luaserv.listen_options", "luaserv.connect_options",
                                  "luaserv.settings", "luaserv.protocol",
                                  "luaserv.http.request", "luaserv.http.response" } do
                assert.truthy(classes[cn], "no ---@class " .. cn)
            end
        end)

        it("gives the errors their runtime values", function()
            local m = assert(loadfile(META))()
            assert.are.same({ PACKAGE_TOO_BIG = 1, BAD_INPUT = 2, SEND_FAIL = 3,
                              CONNECT_FAIL = 4, TIMEOUT = 5 }, m.errors)
        end)
    end)

    describe("the names read from the sources", function()
        -- A reader that found nothing would make every check below pass.
        it("are found", function()
            assert.is_true(#c_files() > 0, "no C sources under src/")
            for _, name in ipairs { "listen", "settings", "log", "connections",
                                    "connect", "after", "every" } do
                assert.truthy(c.module[name] or init_exports()[name], name)
            end
            assert.truthy(c.methods["luaserv.conn"], "no luaserv.conn methods found")
            assert.truthy(c.methods["luaserv.conn"].send)
            assert.truthy(c.methods["luaserv.timer"], "no luaserv.timer methods found")
            assert.truthy(c.props["luaserv.conn"] and c.props["luaserv.conn"].remoteIp)
            assert.truthy(c.callbacks.onMessage and c.callbacks.onWorkerStart)
            assert.truthy(c.options.maxPackageSize and c.options.stopTimeout)
            assert.truthy(c.core_fields.TIMEOUT and c.core_fields.generation)
        end)

        it("are all owned by a class (method tables in files with one metatable)",
        function()
            assert.are.same({}, c.unowned)
        end)
    end)

    describe("covers", function()
        it("every module function and field (C and init.lua)", function()
            local names = init_exports()
            for k, v in pairs(c.module) do names[k] = v end
            assert.are.same({}, missing(classes, { "luaserv" }, names))
            assert.are.same({}, unannotated(classes, "luaserv", names))
        end)

        it("every conn method registered in C, annotated", function()
            local names = c.methods["luaserv.conn"] or {}
            assert.are.same({}, missing(classes, { "luaserv.conn" }, names))
            assert.are.same({}, unannotated(classes, "luaserv.conn", names))
        end)

        it("every conn property", function()
            assert.are.same({}, missing(classes, { "luaserv.conn" },
                                        c.props["luaserv.conn"] or {}))
        end)

        it("the methods and properties of every other userdata", function()
            for mt, names in pairs(c.methods) do
                assert.are.same({}, missing(classes, { mt }, names), mt)
                assert.are.same({}, unannotated(classes, mt, names), mt)
            end
            for mt, names in pairs(c.props) do
                assert.are.same({}, missing(classes, { mt }, names), mt)
            end
        end)

        it("every callback the C code looks up, on the listener", function()
            -- (or on the module: luaserv.onTask)
            assert.are.same({}, missing(classes, { "luaserv.listener", "luaserv" },
                                        c.callbacks))
        end)

        it("every listen() option, connect() option and setting", function()
            assert.are.same({}, missing(classes, { "luaserv.listen_options",
                                                   "luaserv.connect_options",
                                                   "luaserv.settings" }, c.options))
        end)

        it("every field luaserv.core sets (listener, worker, errors)", function()
            local all = {}
            for cn in pairs(classes) do all[#all + 1] = cn end
            assert.are.same({}, missing(classes, all, c.core_fields))
        end)
    end)

    describe("the checker", function()
        -- The checks above can fail: a meta file without a name is caught.
        local fake = table.concat({
            "---@meta luaserv",
            "---@class luaserv",
            "---@field worker luaserv.worker|nil",
            "local luaserv = {}",
            "---@class luaserv.conn",
            "---@field id integer",
            "local conn = {}",
            "---@param data string",
            "function conn:send(data) end",
            "function conn:close() end",
            "---@return boolean",
            "function luaserv.listen() end",
        }, "\n")

        it("reports names that have no definition", function()
            local cl = parse_meta(fake)
            assert.are.same({ "after (x.c)", "connect (y.c)" },
                            missing(cl, { "luaserv" }, { listen = "x.c", worker = "i.lua",
                                                         after = "x.c", connect = "y.c" }))
            assert.are.same({ "destroy (c.c)" },
                            missing(cl, { "luaserv.conn" }, { send = "c.c", destroy = "c.c",
                                                              id = "c.c" }))
        end)

        it("reports functions defined without an annotation", function()
            local cl = parse_meta(fake)
            assert.are.same({ "close" },
                            unannotated(cl, "luaserv.conn", set { "send", "close" }))
        end)

        it("reads luaL_Reg tables, setfield functions and keys from C", function()
            local path = os.tmpname()
            local f = assert(io.open(path, "w"))
            f:write([[
#define X_MT "luaserv.x"
static const luaL_Reg lx_methods[] = { {"poke", lx_poke}, {"__gc", lx_gc}, {NULL, NULL} };
static const luaL_Reg lx_funcs[] = { {"spawn", lx_spawn}, {NULL, NULL} };
    lua_pushcfunction(L, lx_later);
    lua_setfield(L, -2, "later");
    if (strcmp(k, "size") == 0) return 1;
    ls_conn_emit(c, "onPoke");
]])
            f:close()
            local r = parse_c { path }
            os.remove(path)
            assert.are.same({ "poke" }, sorted_keys(r.methods["luaserv.x"]))
            assert.are.same({ "later", "spawn" }, sorted_keys(r.module))
            assert.are.same({ "size" }, sorted_keys(r.props["luaserv.x"]))
            assert.are.same({ "onPoke" }, sorted_keys(r.callbacks))
        end)

        it("finds a file's metatable through a macro from a header", function()
            local path = os.tmpname()
            local f = assert(io.open(path, "w"))
            f:write([[
static const luaL_Reg ly_methods[] = { {"tap", ly_tap}, {NULL, NULL} };
    if (luaL_newmetatable(L, Y_MT)) { }
]])
            f:close()
            local r = parse_c({ path }, { Y_MT = "luaserv.y" })
            os.remove(path)
            assert.are.same({ "tap" }, sorted_keys(r.methods["luaserv.y"]))
            assert.are.same({}, r.unowned)
        end)
    end)
end)
