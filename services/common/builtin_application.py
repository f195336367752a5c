"""hooks' own application: the events hooks itself publishes, registered by the registry at every start
like any application's, so accounts route them with filters as they route anyone's."""

#: The application's name.
NAME = "hooks"
#: The sender disabled an endpoint (410 Gone, or failing for too long): published for its account.
ENDPOINT_DISABLED = "endpoint-disabled"
#: A test message an account asked the sender to deliver to one of its endpoints.
TEST = "test"
