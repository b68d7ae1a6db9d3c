"""The HTTP service (``emotrace serve``, the ``serve`` extra): FastAPI routes, the SQLite job
table and the web page. Thin: recognition is :class:`~emotrace.inference.Recognizer`'s."""

from emotrace.server.app import create_app
from emotrace.server.settings import ServerSettings

__all__ = ["ServerSettings", "create_app"]
