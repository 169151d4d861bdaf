"""The HTTP service: app, batching, request/response I/O, metrics, config."""
