"""Who may do what and how much: auth, rate limit, admission, SSRF, signing (pure)."""
