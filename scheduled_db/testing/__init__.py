"""The Raft simulator and its invariant checker (whole clusters in one process)."""
