"""The job model, its validation, timestamps and cron schedules (pure)."""
