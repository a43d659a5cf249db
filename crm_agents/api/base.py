"""The base of every API view set: rows of the caller's workspaces only, simple list
filters from query parameters, JSON bodies."""

from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiParameter
from rest_framework import viewsets
from rest_framework.exceptions import ValidationError
from rest_framework.parsers import JSONParser

from crm_agents.api.access import may_configure, workspaces_for_request

ID_FILTERS = frozenset({"workspace", "call", "workflow", "run"})


def list_filters(*names: str) -> list[OpenApiParameter]:
    """The schema of a list's filters (ScopedViewSet.filter_fields, plus ``workspace``)."""
    return [
        OpenApiParameter(name, int if name in ID_FILTERS else str, description=f"Only this {name}.")
        for name in ("workspace", *names)
    ]


class ScopedViewSet(viewsets.GenericViewSet):
    """Rows of the caller's workspaces only; list filters from ``filter_fields``.

    ``filter_fields`` maps a query parameter to an ORM lookup; integer parameters are
    checked, so ``?call=abc`` is a 400, not a 500.
    """

    model: type = None
    filter_fields: dict[str, str] = {}
    parser_classes = [JSONParser]

    def base_queryset(self) -> QuerySet:
        return self.model.objects.all()

    def get_queryset(self) -> QuerySet:
        queryset = self.base_queryset().filter(workspace__in=workspaces_for_request(self.request))
        if self.action != "list":
            return queryset
        lookups = {"workspace": "workspace", **self.filter_fields}
        for param, lookup in lookups.items():
            value = self.request.query_params.get(param)
            if value in (None, ""):
                continue
            if param in ID_FILTERS and not value.isdigit():
                raise ValidationError({param: [f"{value!r} is not an id."]})
            queryset = queryset.filter(**{lookup: value})
        return queryset

    def get_serializer_context(self) -> dict:
        context = super().get_serializer_context()
        obj = getattr(self, "_object", None)
        context["privileged"] = obj is not None and may_configure(self.request, obj.workspace_id)
        return context

    def get_object(self):
        self._object = super().get_object()
        return self._object
