-- Snippets must be self-contained.
local json = require("cjson")

function envoy_on_request(request_handle)
  request_handle:logInfo(json.encode({}))
end
