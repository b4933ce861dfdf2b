--- luaserv.shdict_ffi: in LuaJIT builds, the hot shared dict methods (get,
-- get_stale, set, safe_set, add, safe_add, replace, delete, incr) through
-- LuaJIT's FFI, as lua-resty-core does for ngx.shared.DICT: a JIT-compiled
-- loop then calls straight into C (src/lua/lua_shdict_ffi.c) instead of
-- through the Lua C API, which the JIT cannot compile.
--
-- Same arguments, return values and errors as the C methods
-- (src/lua/lua_shdict.c): what is not the common case (a key that is not a
-- string, a bad argument, a self that is not a dict) goes to the C method,
-- which answers or raises as it always has. Loaded by the C side
-- (ls_lua_shdict_register) when a LuaJIT worker has dicts; it returns the
-- function that replaces the methods.
-- @module luaserv.shdict_ffi

local ffi = require "ffi"

local C = ffi.C
local type = type
local ffi_string = ffi.string

-- src/lua/lua_shdict_ffi.h (the dict pointers are void * here)
ffi.cdef [[
typedef struct ls_lua_shdict_ffi_val {
    const char *s;
    size_t len;
    double n;
    uint32_t flags;
    int type;
    int stale;
    int forcible;
} ls_lua_shdict_ffi_val_t;
int ls_lua_shdict_ffi_get(void *d, const char *k, size_t kl, int stale_ok,
                          ls_lua_shdict_ffi_val_t *v);
int ls_lua_shdict_ffi_store(void *d, int op, int safe, const char *k,
                            size_t kl, int type, const char *s, size_t len,
                            double n, double ttl, uint32_t flags,
                            int *forcible);
int ls_lua_shdict_ffi_incr(void *d, const char *k, size_t kl, double step,
                           int has_init, double init, double init_ttl,
                           ls_lua_shdict_ffi_val_t *v);
]]

-- src/core/shdict.h
local NONE, STR, NUM, BOOL = 0, 1, 3, 4
local OK, NOTFOUND = 0, 1
local SET, ADD, REPLACE = 0, 1, 2
local KEY_MAX = 65535
local FLAGS_MAX = 4294967295

-- shdict_errstr in src/lua/lua_shdict.c, by outcome
local errstr = {
    [1] = "not found", [2] = "exists", [3] = "no memory",
    [4] = "not a number", [5] = "value not a list", [6] = "value is a list",
    [8] = "lock failed",
}
setmetatable(errstr, { __index = function() return "out of memory" end })

local val = ffi.new("ls_lua_shdict_ffi_val_t")
local forcible = ffi.new("int[1]")

-- A value's type for ls_lua_shdict_ffi_store, or nil for one a dict
-- cannot hold.
local function vtype(value)
    local t = type(value)
    if t == "string" then return STR end
    if t == "number" then return NUM end
    if t == "boolean" then return BOOL end
    if value == nil then return NONE end
    return nil
end

--- Replace the methods of dicts (a table of userdata = light userdata of
-- the ls_shdict_t) in the methods table with their FFI forms.
return function(methods, dicts)
    local ptr = {}
    for ud, d in pairs(dicts) do
        ptr[ud] = ffi.cast("void *", d)
    end

    local function getter(c_get, stale_ok)
        return function(self, key)
            local d = ptr[self]
            if d == nil or type(key) ~= "string" then
                return c_get(self, key)
            end
            local kl = #key
            if kl == 0 or kl > KEY_MAX then
                return c_get(self, key)
            end
            local rc = C.ls_lua_shdict_ffi_get(d, key, kl, stale_ok, val)
            if rc ~= OK then
                if rc == NOTFOUND then return nil end
                return nil, errstr[rc]
            end
            local t = val.type
            local v
            if t == STR then
                v = ffi_string(val.s, val.len)
            elseif t == BOOL then
                v = val.n ~= 0
            else
                v = val.n
            end
            local flags = val.flags
            if stale_ok == 1 then
                return v, flags ~= 0 and flags or nil, val.stale ~= 0
            end
            if flags ~= 0 then return v, flags end
            return v
        end
    end

    local function storer(c_store, op, safe)
        return function(self, key, value, exptime, flags)
            local d = ptr[self]
            local vt = vtype(value)
            if d == nil or type(key) ~= "string" or vt == nil then
                return c_store(self, key, value, exptime, flags)
            end
            local kl = #key
            if kl == 0 or kl > KEY_MAX then
                return c_store(self, key, value, exptime, flags)
            end
            local ttl, fl = 0, 0
            if exptime ~= nil then
                if type(exptime) ~= "number" or exptime ~= exptime or
                   exptime < 0 then
                    return c_store(self, key, value, exptime, flags)
                end
                ttl = exptime
            end
            if flags ~= nil then
                if type(flags) ~= "number" or flags ~= flags or flags < 0 or
                   flags > FLAGS_MAX or flags % 1 ~= 0 then
                    return c_store(self, key, value, exptime, flags)
                end
                fl = flags
            end
            local s, len, n = nil, 0, 0
            if vt == STR then
                s, len = value, #value
            elseif vt == NUM then
                n = value
            elseif vt == BOOL then
                n = value and 1 or 0
            end
            local rc = C.ls_lua_shdict_ffi_store(d, op, safe, key, kl, vt, s,
                                                 len, n, ttl, fl, forcible)
            if rc == OK then
                return true, nil, forcible[0] ~= 0
            end
            return false, errstr[rc], forcible[0] ~= 0
        end
    end

    local c_delete = methods.delete
    local set = storer(methods.set, SET, 0)
    methods.get = getter(methods.get, 0)
    methods.get_stale = getter(methods.get_stale, 1)
    methods.set = set
    methods.safe_set = storer(methods.safe_set, SET, 1)
    methods.add = storer(methods.add, ADD, 0)
    methods.safe_add = storer(methods.safe_add, ADD, 1)
    methods.replace = storer(methods.replace, REPLACE, 0)

    -- delete(key) -> true (a set to nil; false if the lock failed)
    methods.delete = function(self, key)
        if ptr[self] == nil or type(key) ~= "string" or #key == 0 or
           #key > KEY_MAX then
            return c_delete(self, key)
        end
        return (set(self, key, nil))
    end

    local c_incr = methods.incr
    methods.incr = function(self, key, value, init, init_ttl)
        local d = ptr[self]
        if d == nil or type(key) ~= "string" or type(value) ~= "number" then
            return c_incr(self, key, value, init, init_ttl)
        end
        local kl = #key
        if kl == 0 or kl > KEY_MAX then
            return c_incr(self, key, value, init, init_ttl)
        end
        local has_init, iv, ttl = 0, 0, 0
        if init ~= nil then
            if type(init) ~= "number" then
                return c_incr(self, key, value, init, init_ttl)
            end
            has_init, iv = 1, init
        end
        if init_ttl ~= nil then
            if has_init == 0 or type(init_ttl) ~= "number" or
               init_ttl ~= init_ttl or init_ttl < 0 then
                return c_incr(self, key, value, init, init_ttl)
            end
            ttl = init_ttl
        end
        local rc = C.ls_lua_shdict_ffi_incr(d, key, kl, value, has_init, iv,
                                            ttl, val)
        if rc ~= OK then
            return nil, errstr[rc]
        end
        return val.n, nil, val.forcible ~= 0
    end
end
