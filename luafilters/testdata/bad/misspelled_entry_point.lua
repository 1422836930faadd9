-- Envoy looks for envoy_on_request exactly.
function envoy_on_requests(request_handle)
  request_handle:logInfo("never called")
end
