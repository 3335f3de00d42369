"""What the leader decides at fire time: claims, retries, slots, fairness (pure)."""
