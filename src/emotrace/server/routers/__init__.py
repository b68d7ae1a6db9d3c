"""The service's routes, one router per resource: ``health``, ``predict`` (photos), ``jobs``
(videos), ``stream`` (the webcam WebSocket) and ``pages`` (the web page)."""
