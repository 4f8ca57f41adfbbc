"""``ksentinel demo``: every part of ksentinel in one run against one target, one report."""
