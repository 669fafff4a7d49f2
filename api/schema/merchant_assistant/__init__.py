"""The merchant assistant (商户助手, issue 12): types (a leaf the staff viewer uses), inputs and payloads,
and the root-field mixins of both endpoints (`root`)."""
