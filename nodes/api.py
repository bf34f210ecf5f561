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
    status = serializers.ChoiceField(choices=["up", "down"], help_text="From a short probe of the node's `/health`.")
    latency_ms = serializers.IntegerField(allow_null=True, help_text="The probe's round trip; null when down.")
    in_flight = serializers.IntegerField(help_text="Sends waiting on this node in this instance.")
    max_in_flight = serializers.IntegerField(help_text="`SOFIIA_NODE_MAX_INFLIGHT`: past it a send is `node_busy`.")


class NodeListApi(APIView):
    """``GET /api/nodes``: each node's health (probed, cached a few seconds) and its sends in flight."""

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
                    "status": s.status,
                    "latency_ms": s.latency_ms,
                    "in_flight": bulkhead.in_flight(s.name),
                    "max_in_flight": limit,
                }
                for s in node_statuses()
            ]
        )
