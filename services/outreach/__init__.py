"""Outreach service: community meetings, home visits, approvals, safety check-ins."""
