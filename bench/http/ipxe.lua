-- wrk script: GET /ipxe?mac=<random MAC of the generated groups>
local macs = {}
local path = os.getenv("MACS_FILE") or "macs.txt"
for line in io.lines(path) do macs[#macs + 1] = line end
local n = 0
request = function()
  n = n + 1
  local mac = macs[((n * 7919) % #macs) + 1]
  return wrk.format("GET", "/ipxe?mac=" .. mac)
end
