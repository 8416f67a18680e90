"""The only place with I/O: the event store, the org file, the notification outbox."""
