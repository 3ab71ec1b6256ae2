"""Access control: API keys (``keys``) and projects (``projects``).

``flightlog keys create|list|revoke`` manage the keys of a store; ``flightlog serve`` checks
them on every request but the health checks once any key exists (``flightlog.server.guard``).
"""
