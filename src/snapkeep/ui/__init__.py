"""The web UI: server-rendered pages under ``/``, served by ``snapkeep serve`` beside the API.

Pages are Jinja2 templates rendered by the same process that serves the API, calling the same services
with the logged-in user's principal (so scope and roles are the services' rules, never the page's). htmx
(a pinned copy in ``static/``, no CDN) swaps fragments for live parts such as a job's progress. There is no
build step and no third-party request: everything a page needs ships inside the package.
"""
