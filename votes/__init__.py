"""The pure domain of participatory-budget voting. Imports no I/O library.

- :mod:`votes.election` — the election definition (TOML / JSON), validated;
- :mod:`votes.money` — amounts in integer kopecks;
- :mod:`votes.tokens` — pseudonymous voter tokens (HMAC-SHA256 of election id and identity number);
- :mod:`votes.entries` — entry types and which key role may write each;
- :mod:`votes.tags` — the tag vocabulary of the log;
- :mod:`votes.rules` — decisions on ballots, spoiled ballots and voids; what counts per voter;
- :mod:`votes.errors` — every refusal, with its problem code and data (the API maps codes to HTTP).
"""
