-- The "if" lacks its "then".
function envoy_on_request(request_handle)
  local method = request_handle:headers():get(":method")
  if method == "DELETE"
    request_handle:respond({[":status"] = "403"}, "nope")
  end
end
