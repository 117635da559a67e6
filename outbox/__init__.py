"""The durable outbox: store (database side) and worker (sending)."""
