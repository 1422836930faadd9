-- Envoy's HTTP/1 codec turns Host into ":authority", so get("host") is nil.
function envoy_on_request(request_handle)
  local host = request_handle:headers():get("host")
  if host:lower() == "admin.upyun.com" then
    request_handle:respond({[":status"] = "403"}, "nope")
  end
end
