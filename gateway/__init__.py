"""The gateway: HTTP/JSON for outside callers, transcoded to gRPC from the protos' `google.api.http`
annotations. It holds no state and no business logic: routes, request and response shapes, and the
OpenAPI document all come from the descriptors, so an annotated RPC gets its route with no code here."""
