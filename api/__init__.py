"""mallpoints: a GraphQL backend for a shopping mall's membership-points programme."""
