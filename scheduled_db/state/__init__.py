"""The replicated state machine: commands, transitions, records, queries (pure)."""
