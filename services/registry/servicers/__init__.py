"""The gRPC servicers: thin edges that read the caller's account and call the domain modules. What
those raise (FieldViolations, a services.common.errors Problem, a database error) becomes the
caller's status in the one error mapping every server has (services.common.server)."""
