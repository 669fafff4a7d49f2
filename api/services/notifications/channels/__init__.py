"""Push channels: one adapter per vendor, each a `Channel` (api/services/notifications/channels/base.py)."""
