"""The REST API behind the brand's Zalo Mini App (``/api/miniapp/v1``)."""
