"""The shell's plumbing: clock, event-loop thread, logs, metrics, TLS, launcher."""
