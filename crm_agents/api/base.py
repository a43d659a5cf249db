"""The base of every API view set: query parameters checked after authentication, rows of
the caller's workspaces only, list filters declared with their kind, JSON bodies."""

from django.db.models import QuerySet
from rest_framework import viewsets
from rest_framework.exceptions import NotFound
from rest_framework.request import Request

from crm_agents.api.access import may_configure, workspaces_for_request
from crm_agents.api.filters import ListFilter, apply_filters, check_query_params, parse_id


class CheckedQueryMixin:
    """Refuse unstorable text in any query parameter (400), once the caller is known."""

    def initial(self, request: Request, *args, **kwargs) -> None:
        super().initial(request, *args, **kwargs)
        check_query_params(request)


class ApiViewSet(CheckedQueryMixin, viewsets.GenericViewSet):
    """``list_filters``: the list's query parameters (the schema documents them too).

    A path id that cannot be an id (``/calls/abc/``, a 30-digit number) is the same 404 as
    an id that does not exist.
    """

    list_filters: dict[str, ListFilter] = {}

    def filter_queryset(self, queryset: QuerySet) -> QuerySet:
        if self.action == "list":
            queryset = apply_filters(queryset, self.request, self.list_filters)
        return super().filter_queryset(queryset)

    def get_object(self):
        if parse_id(str(self.kwargs.get(self.lookup_url_kwarg or self.lookup_field, ""))) is None:
            raise NotFound()
        return super().get_object()


class ScopedViewSet(ApiViewSet):
    """Rows of the caller's workspaces only; ``?workspace=`` narrows a list to one."""

    model: type = None
    list_filters = {"workspace": ListFilter("workspace", "id", "Only this workspace.")}

    def base_queryset(self) -> QuerySet:
        return self.model.objects.all()

    def get_queryset(self) -> QuerySet:
        return self.base_queryset().filter(workspace__in=workspaces_for_request(self.request))

    def get_serializer_context(self) -> dict:
        context = super().get_serializer_context()
        obj = getattr(self, "_object", None)
        context["privileged"] = obj is not None and may_configure(self.request, obj.workspace_id)
        return context

    def get_object(self):
        self._object = super().get_object()
        return self._object


def with_workspace(**filters: ListFilter) -> dict[str, ListFilter]:
    """A scoped list's filters: ``workspace`` and these."""
    return {**ScopedViewSet.list_filters, **filters}
