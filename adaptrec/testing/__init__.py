"""Helpers for adaptrec's own test tiers; nothing here runs in production."""
