"""Superusers tune a sandbox account's limits and faults from the admin."""

import pytest
from django.urls import reverse

from integrations.sandbox import seed
from integrations.sandbox.models import SandboxAccount

pytestmark = pytest.mark.django_db


def test_a_superuser_sets_faults_and_limits(superuser, login):
    account = seed.create_account("hubspot", "Portal")
    url = reverse("admin:sandbox_sandboxaccount_change", args=[account.pk])
    client = login(superuser)
    form = client.get(url).context["adminform"].form
    data = {name: value for name, value in form.initial.items() if value is not None}
    data.update(name="Portal", error_rate="0.25", burst_limit="50", latency_ms="100")

    response = client.post(url, data)

    assert response.status_code == 302, response.context["adminform"].form.errors
    account = SandboxAccount.objects.get(pk=account.pk)
    assert (account.error_rate, account.burst_limit, account.latency_ms) == (0.25, 50, 100)


def test_the_request_log_is_read_only(superuser, login):
    client = login(superuser)

    assert client.get(reverse("admin:sandbox_sandboxrequest_changelist")).status_code == 200
    assert client.get(reverse("admin:sandbox_sandboxrequest_add")).status_code == 403
