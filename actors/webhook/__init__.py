"""The WebhookActor: delivery attempts, its HTTP client, DNS and the SSRF guard."""
