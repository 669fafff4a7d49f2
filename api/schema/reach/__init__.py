"""Reach (issue 13 items 3-5): tags, segments, campaigns (operators) and notifications (members)."""
