-- Reject requests that do not carry a non-empty "api_key" query parameter with 400.

-- query_param returns the raw value of the first `name=` parameter in path, or nil.
local function query_param(path, name)
  local query = path:match("%?(.*)$")
  if query == nil then
    return nil
  end
  for pair in query:gmatch("[^&]+") do
    local key, value = pair:match("^([^=]*)=?(.*)$")
    if key == name then
      return value
    end
  end
  return nil
end

function envoy_on_request(request_handle)
  local path = request_handle:headers():get(":path")
  local key = query_param(path, "api_key")
  if key == nil or key == "" then
    request_handle:respond(
      {[":status"] = "400", ["content-type"] = "text/plain"},
      "missing query parameter: api_key\n")
  end
end
