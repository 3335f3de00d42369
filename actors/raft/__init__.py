"""The RaftActor, its peer transport and wire format, snapshot streaming, the lease."""
