-- pcall() cannot hide an API misuse from validation.
function envoy_on_request(request_handle)
  local name = "get" .. "Body"
  local ok = pcall(function()
    return request_handle[name](request_handle)
  end)
  request_handle:logInfo(tostring(ok))
end
