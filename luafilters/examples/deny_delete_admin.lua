-- Refuse DELETE requests to the admin host with 403 Forbidden.
-- Envoy's HTTP/1 codec turns the Host header into ":authority"; it may carry a port.
function envoy_on_request(request_handle)
  local headers = request_handle:headers()
  local method = headers:get(":method")
  local host = (headers:get(":authority") or ""):lower():match("^[^:]*")
  if method == "DELETE" and host == "admin.upyun.com" then
    request_handle:logWarn("refusing DELETE on " .. host .. headers:get(":path"))
    request_handle:respond(
      {[":status"] = "403", ["content-type"] = "text/plain"},
      "DELETE is not allowed on admin.upyun.com\n")
  end
end
