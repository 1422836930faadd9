-- Envoy only sends local replies with a status between 200 and 599.
function envoy_on_request(request_handle)
  request_handle:respond({[":status"] = "forbidden"}, "nope")
end
