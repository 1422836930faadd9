-- request_handle has no foo().
function envoy_on_request(request_handle)
  local path = request_handle:headers():get(":path")
  request_handle:foo(path)
end
