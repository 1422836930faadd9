-- Top-level code runs when Envoy loads the script; this never finishes loading.
local ready = false
repeat
  ready = ready and ready
until ready

function envoy_on_request(request_handle)
end
