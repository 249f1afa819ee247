"""Inbound platform webhooks: raw body, signature check, parse into ``bot`` updates, enqueue, 200."""
