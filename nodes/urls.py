from django.urls import path

from nodes import api

urlpatterns = [
    path("nodes", api.NodeListApi.as_view(), name="node-list"),
]
