-- luacheck configuration (https://luacheck.readthedocs.io)
std = "lua54"
max_line_length = 100
codes = true

exclude_files = {
    "build*/**", ".git/**",
    -- does not compile, on purpose
    "spec/fixtures/apps/broken_syntax.lua",
}

-- The app/fixture scripts and examples talk to luaserv only through
-- require "luaserv"; callbacks are assigned as fields of the listener.
files["spec/**/*_spec.lua"] = { std = "+busted" }
files["spec/fixtures/apps/**/*.lua"] = {
    -- broken_syntax.lua does not compile on purpose
    ignore = { "211/conn", "212" },
}

-- Unused callback arguments are part of the documented signatures.
unused_args = false
