"""Who may do what: the cross-site and host guard, the API token and its gate, sign-in and its throttle, the
security headers (CSP), and the access log's redaction of tokens."""
