"""The read-only web dashboard served by `newswatch web` (worker/cli/web.py):
`app` (routes, access token, static files), `pages` (one function per page, reading
through worker/store/dashboard.py), `format` (times and highlights), `serve` (the
threaded HTTP server), `templates/` and `static/` (uPlot, shipped from the npm package)."""
