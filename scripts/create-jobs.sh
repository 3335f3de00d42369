#!/bin/sh
# Creates a handful of example jobs through the CLI against $SCHEDULED_DB_URL
# (default http://localhost:8080; `make create-jobs URL=...` sets it).  Fixed ids
# make a rerun a no-op (a repeated identical create changes nothing); the jobs timed
# from now carry the time in their id, so a rerun adds new ones.
# Webhooks point at example.com; give your own receiver with HOOK=http://...
set -eu
PYTHON=${PYTHON:-python3}
HOOK=${HOOK:-https://example.com/hooks/scheduled-db}
now=$(date +%s)
jobs() { "$PYTHON" -m scheduled_db jobs "$@"; }

jobs create --id example-in-one-hour-$now --type unico --timestamp $((now + 3600)) \
  --webhook-url "$HOOK" --payload '{"task": "send-reminder", "user": 42}'
jobs create --id example-new-year --type unico --timestamp 2030-01-01T00:00:00Z \
  --webhook-url "$HOOK" --payload '{"task": "greet"}'
jobs create --id example-every-5-minutes --type recurrente --cron '*/5 * * * *' \
  --webhook-url "$HOOK"
jobs create --id example-weekdays-9am-madrid --type recurrente --cron '0 9 * * 1-5' \
  --timezone Europe/Madrid --webhook-url "$HOOK" --payload '{"report": "daily"}'
jobs create --id example-hourly-for-a-day-$now --type recurrente --cron '@hourly' \
  --last-date $((now + 86400)) --webhook-url "$HOOK"
jobs list
