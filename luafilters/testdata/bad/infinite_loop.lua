-- Never terminates; Envoy's worker thread would hang on it.
function envoy_on_request(request_handle)
  local n = 0
  while true do
    n = n + 1
  end
end
