-- The sample request is a GET, so this branch never runs; the static check still sees the typo.
function envoy_on_request(request_handle)
  if request_handle:headers():get(":method") == "DELETE" then
    request_handle:respnd({[":status"] = "403"}, "nope")
  end
end
