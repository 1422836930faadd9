-- Add X-Content-Type-Options to upstream responses that do not set it already.
function envoy_on_response(response_handle)
  local headers = response_handle:headers()
  if headers:get("x-content-type-options") == nil then
    headers:add("x-content-type-options", "nosniff")
  end
end
