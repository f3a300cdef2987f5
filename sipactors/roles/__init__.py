"""Transaction users (RFC 3261 §6 "TU"): the roles of the server. Sans-IO like message/ and fsm/."""
