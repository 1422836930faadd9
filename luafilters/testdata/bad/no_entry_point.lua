-- Helpers only: Envoy would load this and never call anything.
local function deny(handle)
  handle:respond({[":status"] = "403"}, "nope")
end

function on_request(handle)
  deny(handle)
end
