-- Handles die when their entry point returns.
local saved

function envoy_on_request(request_handle)
  saved = request_handle
end

function envoy_on_response(response_handle)
  saved:logInfo("the request handle is gone by now")
end
