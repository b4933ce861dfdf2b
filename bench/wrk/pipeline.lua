-- wrk script: N pipelined GET / requests per write (default 16), as in wrk's
-- own scripts/pipeline.lua.   wrk ... -s pipeline.lua URL -- 16
init = function(args)
   local depth = tonumber(args[1]) or 16
   local r = {}
   for i = 1, depth do
      r[i] = wrk.format(nil, "/")
   end
   req = table.concat(r)
end

request = function()
   return req
end
