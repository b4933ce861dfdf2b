--- busted output handler for CI: one line per test as it finishes, the
-- failures in full at the end, and a closing line "N passed, N failed,
-- N skipped" (errors, including ones outside `it` blocks, count as failed).
--
--   busted -o spec/helpers/ci_output.lua

local io_write, io_flush = io.write, io.flush
local string_format = string.format

return function(options)
    local busted = require "busted"
    local handler = require("busted.outputHandlers.base")()
    local clock = os.clock
    local socket_ok, socket = pcall(require, "socket")
    local now = socket_ok and socket.gettime or clock

    local started = {}
    local failed_list = {}
    local passed, failed, skipped = 0, 0, 0

    local function out(s) io_write(s, "\n"); io_flush() end

    local function where(t)
        local tr = t.trace or (t.element and t.element.trace)
        if tr and tr.short_src then
            return tr.short_src .. ":" .. tostring(tr.currentline)
        end
        return "?"
    end

    local function message_of(t)
        local m = t.message
        if m == nil then return "Nil error" end
        if type(m) ~= "string" then
            local ok, pretty = pcall(require, "pl.pretty")
            m = ok and pretty.write(m) or tostring(m)
        end
        return m
    end

    handler.testStart = function(element)
        started[element] = now()
        return nil, true
    end

    handler.testEnd = function(element, _, status)
        local dt = started[element] and (now() - started[element]) or 0
        started[element] = nil
        local name = handler.getFullName(element)
        if status == "success" then
            passed = passed + 1
            out(string_format("ok     %s (%.2fs)", name, dt))
        elseif status == "pending" then
            skipped = skipped + 1
            out(string_format("skip   %s", name))
        else
            failed = failed + 1
            local t = status == "failure" and
                handler.failures[#handler.failures] or
                handler.errors[#handler.errors]
            out(string_format("FAIL   %s (%.2fs) [%s]", name, dt, status))
            failed_list[#failed_list + 1] = { name = name, t = t }
        end
        return nil, true
    end

    handler.error = function(element)
        if element.descriptor ~= "it" then
            failed = failed + 1
            local t = handler.errors[#handler.errors]
            local name = handler.getFullName(element)
            out(string_format("ERROR  %s [%s]", name, element.descriptor))
            failed_list[#failed_list + 1] = { name = name, t = t }
        end
        return nil, true
    end

    handler.suiteEnd = function()
        if #failed_list > 0 then
            out("")
            out("Failures:")
            for i, f in ipairs(failed_list) do
                out("")
                out(string_format("%d) %s  (%s)", i, f.name, where(f.t or {})))
                if f.t then
                    out(message_of(f.t))
                    if options.verbose and f.t.trace and f.t.trace.traceback then
                        out(f.t.trace.traceback)
                    end
                end
            end
            out("")
        end
        out(string_format("%d passed, %d failed, %d skipped",
            passed, failed, skipped))
        return nil, true
    end

    busted.subscribe({ "suite", "end" }, handler.suiteEnd)
    busted.subscribe({ "test", "start" }, handler.testStart,
        { predicate = handler.cancelOnPending })
    busted.subscribe({ "test", "end" }, handler.testEnd,
        { predicate = handler.cancelOnPending })
    busted.subscribe({ "error" }, handler.error)

    return handler
end
