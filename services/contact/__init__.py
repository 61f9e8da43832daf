"""Contact service: referrals, callers, calls and texts, risk and escalations."""
