-- The function is never closed with "end".
function envoy_on_request(request_handle)
  request_handle:logInfo("hello")
