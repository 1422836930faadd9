-- A local function is invisible to Envoy.
local function envoy_on_request(request_handle)
  request_handle:logInfo("never called")
end
