"""Composition root: settings, the aiohttp application, the CLI, the worker and the embedded servers.

Only this package builds concrete objects (database clients, channel clients, services) and hands them
to the others; nothing imports it.
"""
