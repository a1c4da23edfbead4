"""The signed, append-only, verifiable event log: persistence and cryptography."""
