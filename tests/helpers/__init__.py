"""Reusable pieces for tests of every service (real servers in-process, on port 0)."""
