from __future__ import annotations

from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from nodes.bulkhead import max_in_flight, node_bulkhead
from nodes.registry import node_statuses


class NodeListApi(APIView):
    """``GET /api/nodes``: each node's health (probed, cached a few seconds) and its sends in flight."""

    def get(self, request: Request) -> Response:
        bulkhead, limit = node_bulkhead(), max_in_flight()
        return Response(
            [
                {
                    "name": s.name,
                    "status": s.status,
                    "latency_ms": s.latency_ms,
                    "in_flight": bulkhead.in_flight(s.name),
                    "max_in_flight": limit,
                }
                for s in node_statuses()
            ]
        )
