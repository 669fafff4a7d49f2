"""The domain: plain async functions that take typed arguments and return typed results or raise
`DomainError` with a code. Nothing here imports Strawberry."""
