-- The handle goes through a helper, out of the static check's sight; running it finds the typo.
local function tag(handle)
  handle:headers():set("x-tagged", "1")
end

function envoy_on_request(request_handle)
  tag(request_handle)
end
