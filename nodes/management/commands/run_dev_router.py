from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from nodes.devrouter import DevRouter


class Command(BaseCommand):
    help = (
        "Run a small router that speaks the node protocol, for local runs and tests (not for "
        "production). Agents named slow<seconds>, fail500, garbage and badjson misbehave on purpose."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--port", type=int, required=True, help="TCP port to listen on.")
        parser.add_argument("--name", default="NODA1", help="Node name used in replies (default NODA1).")
        parser.add_argument("--host", default="127.0.0.1", help="Address to bind (default 127.0.0.1).")

    def handle(self, *args: Any, port: int, name: str, host: str, **options: Any) -> None:
        router = DevRouter(name=name, host=host, port=port)
        server = router.bind()
        self.stdout.write(f"Dev router {name} listening on {router.url}")
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            server.server_close()
