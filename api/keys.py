"""Typed keys for what the application holds."""

from __future__ import annotations

from aiohttp import web

from api.service import Service

SERVICE = web.AppKey("service", Service)
