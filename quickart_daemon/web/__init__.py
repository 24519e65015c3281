"""The studio web page: the farm live, shots with their flipbook, uploads and downloads.

`app.create_app(cfg)` is the ASGI application (Starlette); `server.serve` runs it in the
foreground (`quickart web`) and `server.WebThread` inside the daemon (`web.serve: true`).
"""
