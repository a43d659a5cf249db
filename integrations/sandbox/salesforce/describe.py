"""Describe bodies as the calling user gets them (``GET /sobjects``, ``…/{Obj}/describe``).

The object-level keys are the recorded ones; their URLs are rewritten to the API version
asked for and to this sandbox's host. ``fields`` is computed per user: fields hidden by
field-level security are left out, read-only ones are neither createable nor updateable
(Org.describe_fields).
"""

import re

from integrations.sandbox.salesforce import metadata
from integrations.sandbox.salesforce.org import Org

_VERSION_PATH = re.compile(r"/services/data/v(?:\d+|xx)\.\d+/")
_UI_HOST = re.compile(r"https://[A-Za-z0-9.-]+\.salesforce\.com")


def _rewrite(value: object, version: str, host: str) -> object:
    if isinstance(value, str):
        value = _VERSION_PATH.sub(f"/services/data/v{version}/", value)
        return _UI_HOST.sub(host, value)
    if isinstance(value, dict):
        return {key: _rewrite(item, version, host) for key, item in value.items()}
    if isinstance(value, list):
        return [_rewrite(item, version, host) for item in value]
    return value


def global_describe(org: Org, host: str) -> dict:
    return {
        "encoding": "UTF-8",
        "maxBatchSize": 200,
        "sobjects": [
            _rewrite(metadata.global_entry(name), org.version, host) for name in org.objects()
        ],
    }


def object_metadata(org: Org, object_name: str, host: str) -> dict:
    """``GET /sobjects/{Obj}/``: the global entry; the sandbox keeps no recently viewed list."""
    return {
        "objectDescribe": _rewrite(metadata.global_entry(object_name), org.version, host),
        "recentItems": [],
    }


def object_describe(org: Org, object_name: str, host: str) -> dict:
    body = metadata.describe_body(object_name)
    described = {}
    for key, value in body.items():
        if key == "fields":
            described[key] = org.describe_fields(object_name)
        else:
            described[key] = _rewrite(value, org.version, host)
    return described
