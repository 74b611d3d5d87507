"""The money ledger (SQLAlchemy): budget reservations, charges and releases, the prediction journal.

An audit trail: every change is a new row; nothing is updated in place.
"""
