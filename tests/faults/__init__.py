"""The fault-injection suite: real node processes, a recording receiver, and the
faults that break a scheduler's promises (hand-over, pause, kill, a per-second cron
across failovers).  ``python -m tests.faults`` runs it and prints the figures;
tests/integration/test_faults.py runs a bounded round of each in CI and asserts
on them.  See docs/reliability.md for what is guaranteed and the measured figures.
"""
