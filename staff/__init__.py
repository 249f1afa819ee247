"""The in-store staff console: QR issuing, customer look-up, orders at the counter, redemption."""
