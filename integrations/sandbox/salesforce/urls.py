"""Salesforce REST paths, rooted at /services/ because simple-salesforce builds every URL
from the bare instance host. A trailing slash is optional wherever Salesforce accepts both.
Anything else under /services/ answers Salesforce's own 404 array body. The OAuth pages and
the identity URL (/id/…) live on login.salesforce.com; the sandbox serves them on its root."""

from django.urls import re_path

from integrations.sandbox.salesforce import authorize, composite, identity, oauth, views
from integrations.sandbox.salesforce.http import methods

_DATA = r"^services/data/v(?P<version>\d+\.\d+)"
_OBJECT = _DATA + r"/sobjects/(?P<sobject>[A-Za-z][A-Za-z0-9_]*)"

urlpatterns = [
    re_path(r"^services/data/?$", methods(GET=views.version_list)),
    re_path(_DATA + r"/?$", methods(GET=views.resources)),
    re_path(_DATA + r"/limits/?$", methods(GET=views.limits)),
    re_path(_DATA + r"/sobjects/?$", methods(GET=views.global_describe)),
    re_path(_OBJECT + r"/describe/?$", methods(GET=views.object_describe)),
    re_path(_OBJECT + r"/?$", methods(GET=views.object_metadata, POST=views.create_record)),
    re_path(
        _OBJECT + r"/(?P<record_id>[^/]+)/?$",
        methods(GET=views.get_record, PATCH=views.update_record, DELETE=views.delete_record),
    ),
    re_path(_DATA + r"/query/?$", methods(GET=views.run_query)),
    re_path(_DATA + r"/queryAll/?$", methods(GET=views.run_query_all)),
    re_path(_DATA + r"/(?:query|queryAll)/(?P<locator>[^/]+)/?$", methods(GET=views.query_more)),
    re_path(
        _DATA + r"/composite/sobjects/?$",
        methods(POST=composite.create, PATCH=composite.update, DELETE=composite.delete),
    ),
    re_path(
        _DATA + r"/composite/sobjects/(?P<sobject>[A-Za-z][A-Za-z0-9_]*)/?$",
        methods(GET=composite.retrieve),
    ),
    re_path(r"^services/oauth2/token/?$", methods(POST=oauth.token)),
    re_path(
        r"^services/oauth2/authorize/?$",
        methods(GET=authorize.authorize, POST=authorize.authorize),
    ),
    re_path(r"^services/oauth2/revoke/?$", methods(GET=oauth.revoke, POST=oauth.revoke)),
    re_path(
        r"^id/(?P<org_id>00D[0-9A-Za-z]{12}(?:[0-9A-Za-z]{3})?)/"
        r"(?P<user_id>005[0-9A-Za-z]{12}(?:[0-9A-Za-z]{3})?)/?$",
        methods(GET=identity.identity),
    ),
    re_path(r"^services/", views.unknown_resource),
]
