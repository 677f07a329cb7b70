"""netra-nb: investigation notebooks for the Netra agent platform."""
