"""The JSON bodies of HubSpot's object, batch and association endpoints, read the way HubSpot
reads them, so that a malformed body is HubSpot's 400 and never a sandbox crash.

HubSpot deserializes a body with Jackson into typed Java objects (the search body has its own
reader, hubspot_search_request.py, with the same conventions). What that means here:

* a JSON number or boolean is read into a string field as its text; an object or an array
  where a string, list or object belongs is ``Invalid input JSON on line L, column C: Cannot
  deserialize value of type `<Java type>` from <token>``, placed on the value (captured:
  ``LinkedHashMap<java.lang.String,java.lang.String>` from Array value`` for a ticket's
  ``properties`` given as an array; ``java.lang.String` from Array value`` for an array as
  a property value);
* a required attribute that is missing or null is ``Cannot build <Class>, some of required
  attributes are not set [<names>]``, placed on the closing brace of its object;
* every answer has ``category: VALIDATION_ERROR`` and the request's correlation id.

Java class names follow the one HubSpot's answers show
(``com.hubspot.inbounddb.publicobject.core.v2.SimplePublicObjectBatchInput$Json``). The
models say what each endpoint reads; the views check meaning (ids, properties, types).
"""

import functools
import json
import types
from collections.abc import Sequence
from typing import Annotated, Any, ClassVar, TypeVar, Union, get_args, get_origin

from pydantic import BaseModel, BeforeValidator, ConfigDict, TypeAdapter, ValidationError
from pydantic.alias_generators import to_camel

from integrations.sandbox.gateway import Call, SandboxError
from integrations.sandbox.hubspot_search_errors import (
    HubSpotSearchError,
    JsonLocator,
    token_description,
)

_PACKAGE = "com.hubspot.inbounddb.publicobject.core.v2"
T = TypeVar("T")


def _as_text(value: object) -> object:
    """Jackson reads a JSON number or boolean into a String field; arrays and objects fail."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return json.dumps(value)
    return value


Text = Annotated[str, BeforeValidator(_as_text)]
# Property values: ``Map<String, String>``; a null value clears, as an empty string does.
PropertyMap = dict[str, Text | None]


class _Body(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, extra="ignore", frozen=True)
    java_class: ClassVar[str]
    required: ClassVar[tuple[str, ...]] = ()


class ObjectId(_Body):
    java_class = f"{_PACKAGE}.SimplePublicObjectId"
    required = ("id",)
    id: Text | None = None


class BatchRead(_Body):
    java_class = f"{_PACKAGE}.BatchReadInputSimplePublicObjectId"
    required = ("inputs",)
    inputs: list[ObjectId] | None = None
    properties: list[Text] | None = None
    properties_with_history: list[Text] | None = None
    id_property: Text | None = None


class AssociationSpec(_Body):
    java_class = f"{_PACKAGE}.AssociationSpec"
    required = ("associationCategory", "associationTypeId")
    association_category: Text | None = None
    association_type_id: int | None = None


class AssociationTarget(_Body):
    java_class = f"{_PACKAGE}.PublicObjectId"
    required = ("id",)
    id: Text | None = None


class AssociationInput(_Body):
    java_class = f"{_PACKAGE}.PublicAssociationsForObject"
    required = ("to", "types")
    to: AssociationTarget | None = None
    types: list[AssociationSpec] | None = None


class ObjectInput(_Body):
    """``PATCH /crm/v3/objects/{type}/{id}``."""

    java_class = f"{_PACKAGE}.SimplePublicObjectInput"
    required = ("properties",)
    properties: PropertyMap | None = None


class ObjectCreate(_Body):
    """``POST /crm/v3/objects/{type}`` and each input of a batch create. HubSpot's spec also
    lists ``associations`` as required, but HubSpot creates without them, and the SDK leaves
    the key out when it is None."""

    java_class = f"{_PACKAGE}.SimplePublicObjectInputForCreate"
    required = ("properties",)
    properties: PropertyMap | None = None
    associations: list[AssociationInput] | None = None


class BatchUpdateInput(_Body):
    java_class = f"{_PACKAGE}.SimplePublicObjectBatchInput$Json"
    required = ("id", "properties")
    id: Text | None = None
    id_property: Text | None = None
    object_write_trace_id: Text | None = None
    properties: PropertyMap | None = None


class BatchUpdate(_Body):
    java_class = f"{_PACKAGE}.BatchInputSimplePublicObjectBatchInput"
    required = ("inputs",)
    inputs: list[BatchUpdateInput] | None = None


class BatchCreate(_Body):
    java_class = f"{_PACKAGE}.BatchInputSimplePublicObjectInputForCreate"
    required = ("inputs",)
    inputs: list[ObjectCreate] | None = None


class AssociationBatchInput(_Body):
    java_class = "com.hubspot.crm.associations.v4.PublicFetchAssociationsBatchRequest"
    required = ("id",)
    id: Text | None = None
    after: Text | None = None


class AssociationBatchRead(_Body):
    java_class = "com.hubspot.crm.associations.v4.BatchInputPublicFetchAssociationsBatchRequest"
    required = ("inputs",)
    inputs: list[AssociationBatchInput] | None = None


# ``PUT /crm/v4/objects/{type}/{id}/associations/{toType}/{toId}``: an array of specs.
AssociationSpecs = list[AssociationSpec]


def read(call: Call, shape: type[T] | Any) -> T:
    """The request's body as ``shape`` (a model or a list of models), or HubSpot's 400."""
    try:
        text = call.request.body.decode()
    except UnicodeDecodeError:
        raise _invalid("Invalid input JSON: the body is not UTF-8") from None
    if not text.strip():
        raise _invalid(
            "Invalid input JSON on line 1, column 1: No content to map due to end-of-input"
        )
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        raise _invalid(
            f"Invalid input JSON on line {error.lineno}, column {error.colno}: {error.msg}"
        ) from None
    locator = JsonLocator(text)
    try:
        body = _adapter(shape).validate_python(document)
    except ValidationError as error:
        problem = error.errors()[0]
        path = list(problem["loc"])
        sentence = f"Cannot deserialize value of type `{java_type(shape, path)}` from "
        where = locator.at_start(path, sentence + token_description(problem["input"]))
        raise _invalid(where) from None
    _check_required(body, [], locator)
    return body


@functools.cache
def _adapter(shape: object) -> TypeAdapter:
    return TypeAdapter(shape)


def _invalid(problem: str | HubSpotSearchError) -> SandboxError:
    message = problem.message if isinstance(problem, HubSpotSearchError) else problem
    return SandboxError(400, message, "VALIDATION_ERROR")


def _check_required(value: object, path: list[str | int], locator: JsonLocator) -> None:
    """Refuse the first object (in document order) missing a required attribute."""
    if isinstance(value, list):
        for index, item in enumerate(value):
            _check_required(item, [*path, index], locator)
        return
    if not isinstance(value, _Body):
        return
    missing = [
        name for name in value.required if getattr(value, _field_name(type(value), name)) is None
    ]
    if missing:
        text = (
            f"Cannot build {value.java_class.rpartition('.')[2].removesuffix('$Json')}, "
            f"some of required attributes are not set [{', '.join(missing)}]"
        )
        raise _invalid(locator.at_end(path, text))
    for alias, child in _children(value):
        _check_required(child, [*path, alias], locator)


def _field_name(model: type[_Body], alias: str) -> str:
    for name, field in model.model_fields.items():
        if (field.alias or name) == alias:
            return name
    raise KeyError(alias)


def _children(value: _Body) -> list[tuple[str, object]]:
    return [
        (field.alias or name, getattr(value, name))
        for name, field in type(value).model_fields.items()
        if isinstance(getattr(value, name), _Body | list)
    ]


def java_type(shape: object, path: Sequence[str | int]) -> str:
    """The Java type HubSpot deserializes the value at ``path`` of a ``shape`` body into."""
    node = shape
    for step in path:
        node = _unwrapped(node)
        origin = get_origin(node)
        if origin is list:
            node = get_args(node)[0]
        elif origin is dict:
            node = get_args(node)[1]
        elif isinstance(node, type) and issubclass(node, _Body) and isinstance(step, str):
            node = node.model_fields[_field_name(node, step)].annotation
        else:
            break
    return _java(node)


def _unwrapped(node: object) -> object:
    """``node`` without ``Annotated`` and ``| None``."""
    while True:
        origin = get_origin(node)
        if origin is Annotated:
            node = get_args(node)[0]
        elif origin in (Union, types.UnionType):
            node = next(arg for arg in get_args(node) if arg is not type(None))
        else:
            return node


def _java(node: object) -> str:
    node = _unwrapped(node)
    origin = get_origin(node)
    if origin is list:
        return f"java.util.ArrayList<{_java(get_args(node)[0])}>"
    if origin is dict:
        return f"java.util.LinkedHashMap<java.lang.String,{_java(get_args(node)[1])}>"
    if node is int:
        return "int"
    if isinstance(node, type) and issubclass(node, _Body):
        return node.java_class
    return "java.lang.String"
