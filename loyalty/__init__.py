"""The loyalty domain: customers, points ledger, tiers, vouchers, rewards, orders, referral, check-in.

Plain Python and pydantic. It declares the repository interfaces it needs; ``storage`` implements them.
"""
