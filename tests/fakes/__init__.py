"""Local fake servers that speak real third-party HTTP APIs, for the real SDK clients in tests."""
