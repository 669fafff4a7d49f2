"""Strawberry types, inputs, payloads, error enums; `public.py` and `admin.py` assemble the schemas."""
