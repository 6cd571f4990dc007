"""The sidecar daemon: settings, FastAPI app, routes, the generation worker, lifecycle.

Nothing is loaded at import time; ``saeguard serve`` (monitor/cli/serve.py) builds a
:class:`~monitor.server.runtime.Runtime` from settings and runs it with
:func:`~monitor.server.lifecycle.serve`.
"""
