-- A GET has no body: body() returns nil unless called as body(true).
function envoy_on_request(request_handle)
  local size = request_handle:body():length()
  request_handle:headers():add("x-body-size", size)
end
