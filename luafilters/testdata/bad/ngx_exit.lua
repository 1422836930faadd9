-- OpenResty habits do not carry over to Envoy.
function envoy_on_request(request_handle)
  if request_handle:headers():get(":method") == "DELETE" then
    ngx.exit(403)
  end
end
