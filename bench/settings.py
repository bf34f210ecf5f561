"""The console's settings plus the benchmark-only endpoints of ``bench.urls``.

Used by ``bench/suite.py`` only; nothing in production imports it.
"""

from sofiia.settings import *  # noqa: F403

ROOT_URLCONF = "bench.urls"
