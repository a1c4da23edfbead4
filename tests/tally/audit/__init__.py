"""Tests of tally/audit/, the independent auditor: its checklist, its crypto, the threats it
catches, and the differential suite against the server's rules, tally and winners."""
