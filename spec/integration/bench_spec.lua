-- bench/run --quick completes and prints its report. Figures are not
-- checked: speed is measured in bench/, never asserted in a test. Peers that
-- are not installed (nginx, Node.js, luv, wrk) show as "skipped" rows; the
-- run never installs anything here (--no-install). Every process it starts
-- carries this run's LUASERV_TEST_ID, so server.cleanup() finds any it left.
local server = require "helpers.server"

local WORKLOADS = { "W1", "W2", "W3", "W3p", "W4", "W5", "W6", "W7" }

describe("bench/run --quick", function()
    after_each(function() server.cleanup() end)

    it("completes and prints a table for every workload", function()
        if os.getenv("LUASERV_CI_BENCH") == "0" then
            pending("LUASERV_CI_BENCH=0 (the sanitizer pass skips it)")
            return
        end
        local bin = os.getenv("LUASERV_BIN") or "build/luaserv"
        local out = os.tmpname()
        local log = out .. ".log"
        finally(function() os.remove(out); os.remove(log) end)
        local cmd = string.format(
            "LUASERV_TEST_ID=%s-bench timeout -k 10 900 bench/run --quick " ..
            "--no-install --luaserv %q --out %q >%q 2>&1",
            server.session, bin, out, log)
        local ok, _, code = os.execute(cmd)
        local report = server.readfile(out) or ""
        local trace = server.tail(server.readfile(log) or "")
        assert.is_true(ok == true or ok == 0, "bench/run exited " ..
            tostring(code) .. "\n" .. trace)
        assert.is_truthy(report:find("## luaserv benchmark", 1, true), trace)
        for _, w in ipairs(WORKLOADS) do
            assert.is_truthy(report:find("### " .. w .. " ", 1, true),
                w .. " section missing\n" .. report)
        end
        -- luaserv itself always runs: its rows carry figures
        local rows = 0
        for line in report:gmatch("[^\n]+") do
            if line:find("^| %*%*luaserv%*%* | [%d.]+") then rows = rows + 1 end
        end
        assert.is_true(rows >= 5, "luaserv rows with figures: " .. rows ..
            "\n" .. report)
        assert.is_truthy(report:find("### Targets from issue 6", 1, true))
        assert.is_truthy(report:find("| W1 ≥ 0.6× C baseline", 1, true))
        -- a peer row has figures, says why it was skipped, or says that
        -- it failed (a peer that got no figures in a 1 s run on a loaded
        -- machine; bench/run's Notes say why): only luaserv's own rows
        -- must have figures, checked above
        for line in report:gmatch("[^\n]+") do
            if line:find("^| [^|-]") and not line:find("^| server |") and
               not line:find("^| target |") and
               not line:find("^| workload |") then
                assert.is_truthy(line:find("skipped: ", 1, true) or
                    (not line:find("^| %*%*luaserv%*%*") and
                     line:find("^| [^|]+ | failed")) or
                    line:find("^| [^|]+ | [^|]*%d") or
                    line:find("information") or line:find("n/a"),
                    "row without figures or reason: " .. line)
            end
        end
    end)
end)
