"""The merchant assistant (商户助手, issue 12), on the public endpoint with merchant staff tokens: a
manager's clerks (`team`), the merchant's business day (`day`) and voucher proposals that operators
approve for the points mall (`proposals`). Roles and examples: docs/merchant-assistant.md."""
