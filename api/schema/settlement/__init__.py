"""Settlement schema (issue 12): types, inputs and payloads, and the root-field mixins."""
