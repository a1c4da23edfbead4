"""The aiohttp service, its pages and the uchast CLI."""
