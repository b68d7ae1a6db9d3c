"""The HTTP service (``emotrace serve``, the ``serve`` extra). Thin: recognition is
:class:`~emotrace.inference.Recognizer`'s.

- ``app``: :func:`create_app` builds the state into ``app.state`` and mounts the routers;
- ``routers/``: one per resource (``health``, ``predict``, ``jobs``, ``stream``, ``pages``);
- ``deps``: the routes' dependencies, taking their state from ``app.state``;
- ``schemas``: the pydantic models of every JSON answer (and ``/openapi.json``);
- ``settings``: :class:`ServerSettings` (pydantic-settings), validated in one place;
- ``gate``: the request gate (Host, Origin, token, body size and time) before any body is read;
- ``pool``: the recognizers, worker threads and memory budget; ``uploads``: reading uploads;
- ``jobs``: the SQLite job table, the job threads and the job's file names;
- ``http``: uvicorn with a time limit on request headers; ``static/``: the page.
"""

from emotrace.server.app import create_app
from emotrace.server.settings import ServerSettings

__all__ = ["ServerSettings", "create_app"]
