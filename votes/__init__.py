"""The pure domain of participatory-budget voting. Imports no I/O library."""
