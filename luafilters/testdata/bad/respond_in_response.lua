-- respond() exists on the request path only.
function envoy_on_response(response_handle)
  if response_handle:headers():get(":status") == "200" then
    response_handle:respond({[":status"] = "500"}, "no")
  end
end
