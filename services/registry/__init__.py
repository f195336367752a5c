"""The registry: applications, event types and levels; endpoints and filters per account; route
resolution; and the change stream other services invalidate their caches from."""
