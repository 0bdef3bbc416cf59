"""The ASGI application: HTTP for Django, WebSockets for Channels.

HTTP goes to Django's WSGI handler on a fixed pool of threads (a2wsgi), not to its ASGI
handler. All our views and middleware are sync: under the ASGI handler each request started
a thread of its own and crossed between it and the event loop four times (a sync-only
middleware forces the hops), which cost ~4 ms of CPU per API request (bench/api.py). Here
a request is one hand-over to a pool thread and back. WebSockets stay on the event loop.
"""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
django_application = get_wsgi_application()

from a2wsgi import WSGIMiddleware  # noqa: E402
from channels.auth import AuthMiddlewareStack  # noqa: E402  (needs Django set up)
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402
from django.conf import settings  # noqa: E402

from config.routing import websocket_urlpatterns  # noqa: E402

http_application = WSGIMiddleware(django_application, workers=settings.CADENZA_WEB_THREADS)
application = ProtocolTypeRouter(
    {
        "http": http_application,
        "websocket": AllowedHostsOriginValidator(
            AuthMiddlewareStack(URLRouter(websocket_urlpatterns))
        ),
    }
)
