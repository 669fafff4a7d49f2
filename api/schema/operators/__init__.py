"""The operators' schema types (issue 10): accounts and roles, approvals, the audit trail, merchant and
tier management. Root fields in `root`, checked against the roles table by `permissions`."""
