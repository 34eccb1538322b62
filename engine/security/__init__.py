"""Keys and encryption, PHI pseudonyms (and, later, users, tokens and roles)."""
