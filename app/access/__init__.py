"""Who may do what: the cross-site and host guard, the API token, sign-in and its throttle."""
