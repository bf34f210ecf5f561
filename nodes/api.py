from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from nodes.bulkhead import max_in_flight, node_bulkhead
from nodes.registry import node_statuses
from sofiia.lib.openapi import READ_ERRORS, error_responses


class NodeOutputSerializer(serializers.Serializer[Any]):
    name = serializers.CharField()
    status = serializers.ChoiceField(
        choices=["up", "down"],
        help_text="The node's last known health, from a short probe of its `/health` in the background; "
        "`down` until a probe has found it up.",
    )
    latency_ms = serializers.IntegerField(allow_null=True, help_text="The probe's round trip; null when down.")
    models = serializers.ListField(
        child=serializers.CharField(),
        help_text="The model ids the node lists at `/v1/models` (at most 200), `[]` when none or unknown.",
    )
    in_flight = serializers.IntegerField(help_text="Sends waiting on this node in this instance.")
    max_in_flight = serializers.IntegerField(help_text="`SOFIIA_NODE_MAX_INFLIGHT`: past it a send is `node_busy`.")


class NodeListApi(APIView):
    """``GET /api/nodes``: each node's last known health and models (never asked on this
    request's path: see ``nodes.registry``) and its sends in flight."""

    @extend_schema(
        operation_id="nodes_list",
        summary="The router nodes and their health",
        responses={200: NodeOutputSerializer(many=True), **error_responses(*READ_ERRORS)},
        tags=["nodes"],
    )
    def get(self, request: Request) -> Response:
        bulkhead, limit = node_bulkhead(), max_in_flight()
        return Response(
            [
                {
                    "name": s.name,
                    # The contract knows up and down: a node not yet known to be up is down.
                    "status": "up" if s.status == "up" else "down",
                    "latency_ms": s.latency_ms if s.status == "up" else None,
                    "models": list(s.models),
                    "in_flight": bulkhead.in_flight(s.name),
                    "max_in_flight": limit,
                }
                for s in node_statuses()
            ]
        )
