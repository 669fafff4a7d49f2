"""Tags, segments (saved filters over members) and campaigns to a segment (issue 13 items 3 and 5)."""
