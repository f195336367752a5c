"""The gRPC servicers: thin edges that read the caller's account, call the domain modules, and turn
problems into statuses (services.registry.problems)."""
