-- Once the body streams through bodyChunks(), the headers have gone on and are read-only.
function envoy_on_response(response_handle)
  for chunk in response_handle:bodyChunks() do
    response_handle:headers():add("x-chunk-size", chunk:length())
  end
end
