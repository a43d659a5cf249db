"""Writes to one sandbox record at the same time, through the real clients over HTTP.

Both CRMs serialise writes to one record, so concurrent writes to different fields all
land and the last write to a field is the one its history shows last. The suite trusts
the sandbox as evidence of exactly-once and no-clobber, so the sandbox must do the same;
and hand out ids, a contact's unique email and scripted model answers once each.
"""

import contextlib
import json
import threading
from collections.abc import Callable

import openai
import pytest
from django.db import connection as db_connection

from integrations.crm import errors
from integrations.crm.base import CrmClient
from integrations.crm.clients import build_client
from integrations.crm.types import ObjectType
from integrations.sandbox import seed, store
from integrations.sandbox.models import ModelMode, Provider, SandboxAccount, SandboxRecord
from tests.crm.conftest import CrmWorld

concurrent = pytest.mark.skipif(
    "sqlite" in db_connection.vendor,
    reason="needs concurrent writers: the SQLite test database serialises them (PostgreSQL "
    "covers this)",
)

DEAL = ObjectType.DEAL
ROUNDS = 20


@pytest.fixture(params=["hubspot", "salesforce"])
def crm(request, sandbox_server) -> CrmWorld:
    return CrmWorld(request.param, sandbox_server)


Write = Callable[[int], None]


def _in_rounds(writers: list[Callable[[], Write]], check: Callable[[int], None]) -> None:
    """Each writer in a thread of its own; in every round all of them write at once, then
    ``check(round)`` runs once they are all done.

    A writer is called once in its thread (to build its client) and gives the function that
    writes round ``n``."""
    start = threading.Barrier(len(writers) + 1, timeout=60)
    done = threading.Barrier(len(writers) + 1, timeout=60)
    failures: list[BaseException] = []

    def work(writer: Callable[[], Write]) -> None:
        try:
            write = writer()
            for number in range(ROUNDS):
                start.wait()
                try:
                    write(number)
                except Exception as exc:  # reported by the main thread
                    failures.append(exc)
                done.wait()
        except threading.BrokenBarrierError:
            pass  # the main thread gave up; it reports why
        except Exception as exc:
            failures.append(exc)
            start.abort()
            done.abort()
        finally:
            db_connection.close()

    threads = [threading.Thread(target=work, args=(writer,)) for writer in writers]
    for thread in threads:
        thread.start()
    try:
        for number in range(ROUNDS):
            try:
                start.wait()
                done.wait()
            except threading.BrokenBarrierError:
                assert failures == []
                raise
            assert failures == []
            check(number)
    finally:
        start.abort()
        done.abort()
        for thread in threads:
            thread.join(timeout=60)


def _with_client(crm: CrmWorld, write: Callable[[CrmClient, int], None]) -> Callable[[], Write]:
    """A writer with a client of its own, built in its thread (the token is issued here,
    where the test's data is committed)."""
    token = seed.issue_token(crm.user).access_token

    def writer() -> Write:
        client = build_client(crm.provider, base_url=crm.server.url, access_token=token)
        return lambda number: write(client, number)

    return writer


def _history_agrees(record: SandboxRecord, names: list[str]) -> None:
    """The newest change of each field is its current value, and no later than the record's
    modification time (HubSpot's property history; Salesforce's LastModifiedDate)."""
    record.refresh_from_db()
    latest = store.latest_changes([record], names)[record.pk]
    for name in names:
        assert latest[name].value == record.values.get(name), name
        assert latest[name].changed_at <= record.updated_at, name


@pytest.mark.django_db
def test_an_update_merges_into_the_stored_record_not_a_stale_copy():
    portal = SandboxAccount.objects.create(provider=Provider.HUBSPOT, external_id="1", name="P")
    record = store.create_record(portal, "deals", {"dealname": "Acme"})
    stale = SandboxRecord.objects.get(pk=record.pk)  # read by a request, before the write below
    store.update_record(record, {"amount": "100"})

    store.update_record(stale, {"hs_next_step": "Call"})

    merged = {"dealname": "Acme", "amount": "100", "hs_next_step": "Call"}
    assert SandboxRecord.objects.get(pk=record.pk).values == merged
    assert stale.values == merged
    _history_agrees(stale, ["amount", "hs_next_step"])


@concurrent
def test_concurrent_updates_to_different_fields_of_one_record_all_land(crm):
    deal = crm.add(DEAL, {"name": "Acme", "amount": 100})
    next_step, amount = crm.field(DEAL, "next_step"), crm.field(DEAL, "amount")

    def check(number: int) -> None:
        record = crm.client.get(DEAL, deal.crm_id, [next_step, amount])
        assert record.properties[next_step] == f"Step {number}", f"round {number}"
        assert record.properties[amount] == str(1000 + number), f"round {number}"
        _history_agrees(deal, [next_step, amount])

    _in_rounds(
        [
            _with_client(crm, lambda c, n: c.update(DEAL, deal.crm_id, {next_step: f"Step {n}"})),
            _with_client(crm, lambda c, n: c.update(DEAL, deal.crm_id, {amount: str(1000 + n)})),
        ],
        check,
    )


@concurrent
def test_concurrent_updates_of_one_field_leave_history_in_write_order(crm):
    deal = crm.add(DEAL, {"name": "Acme"})
    next_step = crm.field(DEAL, "next_step")

    def check(number: int) -> None:
        deal.refresh_from_db()
        assert deal.values[next_step] in {f"A{number}", f"B{number}"}
        _history_agrees(deal, [next_step])

    _in_rounds(
        [
            _with_client(crm, lambda c, n: c.update(DEAL, deal.crm_id, {next_step: f"A{n}"})),
            _with_client(crm, lambda c, n: c.update(DEAL, deal.crm_id, {next_step: f"B{n}"})),
        ],
        check,
    )


@concurrent
def test_concurrent_batch_updates_of_the_same_records_all_land(crm):
    deals = crm.bulk_add(DEAL, [{"name": f"Deal {i}", "amount": 1} for i in range(5)])
    ids = [deal.crm_id for deal in deals]
    next_step, amount = crm.field(DEAL, "next_step"), crm.field(DEAL, "amount")

    def forwards(client, number: int) -> None:
        result = client.update_many(DEAL, {crm_id: {next_step: f"Step {number}"} for crm_id in ids})
        assert result.failed == {}

    def backwards(client, number: int) -> None:
        # The other order: the records' locks must not deadlock the two batches.
        result = client.update_many(
            DEAL, {crm_id: {amount: str(1000 + number)} for crm_id in reversed(ids)}
        )
        assert result.failed == {}

    def check(number: int) -> None:
        for record in crm.client.get_many(DEAL, ids, [next_step, amount]):
            assert record.properties[next_step] == f"Step {number}", f"round {number}"
            assert record.properties[amount] == str(1000 + number), f"round {number}"
        for deal in deals:
            _history_agrees(deal, [next_step, amount])

    _in_rounds([_with_client(crm, forwards), _with_client(crm, backwards)], check)


@concurrent
def test_concurrent_creates_get_distinct_ids(crm):
    names = [f"Deal {i}" for i in range(4)]
    created: list[str] = []

    def creator(name: str) -> Callable:
        def create(client, number: int) -> None:
            fields = {
                crm.field(DEAL, "name"): f"{name}/{number}",
                crm.field(DEAL, "stage"): crm.stage("qualifiedtobuy"),
                crm.field(DEAL, "close_date"): "2026-12-31",
            }
            created.append(client.create(DEAL, fields).id)

        return create

    def check(number: int) -> None:
        assert len(created) == len(set(created)) == len(names) * (number + 1)

    _in_rounds([_with_client(crm, creator(name)) for name in names], check)


@concurrent
def test_concurrent_creates_of_one_contact_email_make_one_contact(sandbox_server):
    crm = CrmWorld("hubspot", sandbox_server)
    email = crm.field(ObjectType.CONTACT, "email")

    def create(client: CrmClient, number: int) -> None:
        # "Contact already exists": another writer got there first.
        with contextlib.suppress(errors.Conflict):
            client.create(ObjectType.CONTACT, {email: f"jane{number}@acme.example"})

    def check(number: int) -> None:
        contacts = store.live_records(crm.account, "contacts")
        assert contacts.filter(values__email=f"jane{number}@acme.example").count() == 1

    _in_rounds([_with_client(crm, create) for _ in range(4)], check)


@concurrent
def test_concurrent_model_requests_consume_each_scripted_answer_once(sandbox_server):
    writers = 4
    account, api_key = seed.create_model_account(ModelMode.SCRIPTED)
    for position in range(writers * ROUNDS):
        seed.script_answer(account, "c1/w", "text", {"content": {"n": position}}, position=position)
    answers: list[int] = []

    def asker() -> Write:
        client = openai.OpenAI(
            base_url=f"{sandbox_server.url}/sandbox/openai/v1", api_key=api_key, max_retries=0
        )

        def ask(number: int) -> None:
            completion = client.chat.completions.create(
                model="sandbox-scripted-1",
                messages=[{"role": "user", "content": "extract"}],
                extra_headers={"X-Sandbox-Script-Key": "c1/w"},
            )
            answers.append(json.loads(completion.choices[0].message.content)["n"])

        return ask

    def check(number: int) -> None:
        assert sorted(answers) == list(range(writers * (number + 1)))

    _in_rounds([asker for _ in range(writers)], check)
