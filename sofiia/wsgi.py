"""WSGI entry point. A configuration error stops the worker with one line, and exit
code 3 makes gunicorn's arbiter halt instead of re-spawning a worker that cannot boot."""

import os
import sys

from django.core.exceptions import ImproperlyConfigured

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "sofiia.settings")

try:
    from django.core.wsgi import get_wsgi_application

    application = get_wsgi_application()
except ImproperlyConfigured as exc:
    sys.stderr.write(f"configuration error: {exc}\n")
    sys.exit(3)
