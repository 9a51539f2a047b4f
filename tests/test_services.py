"""The operator use cases of processors/service, called directly on a real database."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from cli.runtime import Runtime
from domain.company import CompanyStatus, CredentialRef
from domain.stages import Stage, Status
from processors.service.backend import Backend
from processors.service.companies import (
    CompanySettings,
    add_company,
    companies,
    company_history,
    set_status,
    update_company,
)
from processors.service.errors import ExitCode, ServiceError
from processors.service.history import session_at, session_history
from processors.service.imports import import_csv, import_runs
from processors.service.lookup import find_session, require_company
from processors.service.reprocess import reprocess
from processors.service.retry import RetryRequest, retry
from projections.queries import list_sessions
from tests.conftest import SAMPLE_CSV
from tests.factories import T0, Clock

ACME = "Acme"
FIRST = "a068d62a-439b-4d70-924f-3d45ffba673b"
"""The first row of the sample export."""


@pytest.fixture
def backend(sqlite_url: str) -> Iterator[Backend]:
    with Runtime.open(sqlite_url, create=True) as rt:
        yield Backend(app=rt.app, engine=rt.engine, runner=rt.runner, clock=Clock(T0))


@pytest.fixture
def imported(backend: Backend) -> Backend:
    add_company(backend, ACME, CompanySettings(csv_url=str(SAMPLE_CSV)))
    import_csv(backend, ACME, SAMPLE_CSV, secrets={}.get, max_bytes=10**6)
    return backend


def _fail_fetch(backend: Backend, external_id: str) -> None:
    session = backend.app.get_sessions([find_session(backend.engine, external_id).session_id])[0]
    now = backend.clock()
    attempt = session.start_stage(Stage.TRANSCRIPT_FETCH, "w1", now + timedelta(minutes=5), now)
    session.fail_stage(Stage.TRANSCRIPT_FETCH, attempt, "not_found", "gone", False, None, now)
    backend.app.save(session)
    backend.catch_up()


def _status(backend: Backend, external_id: str, stage: Stage) -> Status:
    session = backend.app.get_sessions([find_session(backend.engine, external_id).session_id])[0]
    return session.stages[stage].status


def test_add_company_registers_it_with_its_credential_scope(backend: Backend) -> None:
    ref = CredentialRef(kind="env", name="ACME_PW")
    settings = CompanySettings(
        csv_url="https://acme.example/export.csv",
        username="u",
        password_ref=ref,
        auth_scope=["https://cdn.example"],
        timezone="Europe/Amsterdam",
    )
    info = add_company(backend, ACME, settings, CompanyStatus.TRIAL)
    assert (info.name, info.status, info.timezone) == (ACME, "TRIAL", "Europe/Amsterdam")
    assert info.auth_scope == ["https://cdn.example"]
    assert [c.name for c in companies(backend)] == [ACME]
    assert backend.app.get_company(ACME).password_ref == ref


def test_add_company_refuses_a_password_without_a_user_and_a_duplicate(backend: Backend) -> None:
    settings = CompanySettings(csv_url="/x.csv", password_ref=CredentialRef(kind="env", name="P"))
    with pytest.raises(ServiceError, match="needs --username") as e:
        add_company(backend, ACME, settings)
    assert e.value.code is ExitCode.FAILED
    assert companies(backend) == []
    add_company(backend, ACME, CompanySettings(csv_url="/x.csv"))
    with pytest.raises(Exception, match="already exists"):
        add_company(backend, "acme", CompanySettings(csv_url="/y.csv"))


def test_update_and_status_changes_are_recorded_in_the_company_history(backend: Backend) -> None:
    add_company(backend, ACME, CompanySettings(csv_url="/x.csv", auth_scope=["https://a.example"]))
    info = update_company(backend, ACME, CompanySettings(ai_model="gpt-x", auth_scope=[]))
    assert info.auth_scope == []
    assert backend.app.get_company(ACME).ai_model == "gpt-x"
    company = set_status(backend, ACME, CompanyStatus.SUSPENDED, "ops", "unpaid")
    assert company.status is CompanyStatus.SUSPENDED
    assert require_company(backend.engine, ACME).status == "SUSPENDED"
    set_status(backend, ACME, CompanyStatus.ACTIVE, "ops")
    trail = company_history(backend, ACME)
    assert trail.company == ACME
    assert trail.events[0].event == "Registered"
    changes = [(e.actor, e.reason) for e in trail.events if e.actor]
    assert changes == [("ops", "unpaid"), ("ops", "set to ACTIVE")]
    assert len(company_history(backend, ACME, limit=1).events) == 1


def test_unknown_company_is_refused_with_a_hint_everywhere(backend: Backend) -> None:
    calls = [
        lambda: update_company(backend, "Nope", CompanySettings(ai_model="m")),
        lambda: set_status(backend, "Nope", CompanyStatus.ARCHIVED, "ops"),
        lambda: company_history(backend, "Nope"),
        lambda: import_runs(backend, "Nope"),
        lambda: import_csv(backend, "Nope", SAMPLE_CSV, secrets={}.get, max_bytes=10**6),
        lambda: reprocess(backend, Stage.AI_ANALYSIS, "ops", company="Nope"),
    ]
    for call in calls:
        with pytest.raises(ServiceError, match="unknown company 'Nope'") as e:
            call()
        assert e.value.code is ExitCode.FAILED
        assert e.value.hint and "company list" in e.value.hint


def test_import_creates_sessions_and_a_second_run_finds_them_unchanged(backend: Backend) -> None:
    add_company(backend, ACME, CompanySettings(csv_url=str(SAMPLE_CSV)))
    first = import_csv(backend, ACME, SAMPLE_CSV, secrets={}.get, max_bytes=10**6)
    assert (first.outcome, first.rows_seen, first.new, first.rejected) == ("ok", 6, 6, 0)
    again = import_csv(backend, ACME, SAMPLE_CSV, secrets={}.get, max_bytes=10**6)
    assert (again.new, again.unchanged) == (0, 6)
    missing = import_csv(backend, ACME, Path("/nonexistent.csv"), secrets={}.get, max_bytes=10**6)
    assert missing.outcome == "error" and "No such file" in (missing.error or "")
    runs = import_runs(backend, ACME)  # one fixed clock: all three finished at the same time
    assert sorted(str(r.run_id) for r in runs) == sorted(
        str(r.run_id) for r in (first, again, missing)
    )
    assert import_runs(backend, "acme", limit=1)[0].company == ACME


def test_retry_resets_a_failed_stage_and_refuses_one_with_nothing_to_retry(
    imported: Backend,
) -> None:
    _fail_fetch(imported, FIRST)
    assert _status(imported, FIRST, Stage.TRANSCRIPT_FETCH) is Status.FAILED
    ok = "284c6849-51ba-41b8-8afd-c1a70e7bd997"
    result = retry(imported, RetryRequest(sessions=[FIRST, ok], reason="again"), "ops")
    assert [r.external_id for r in result.reset] == [FIRST]
    assert [(r.external_id, r.reason) for r in result.refused] == [
        (ok, "no FAILED or SKIPPED stage to retry")
    ]
    assert _status(imported, FIRST, Stage.TRANSCRIPT_FETCH) is Status.PENDING
    events = session_history(imported, FIRST).events
    assert (events[-1].event, events[-1].actor, events[-1].reason) == (
        "StageReset",
        "ops",
        "again",
    )


def test_retry_all_failed_of_a_stage(imported: Backend) -> None:
    _fail_fetch(imported, FIRST)
    request = RetryRequest(stage=Stage.TRANSCRIPT_FETCH, all_failed=True, company=ACME)
    assert [r.external_id for r in retry(imported, request, "ops").reset] == [FIRST]
    assert retry(imported, request, "ops").reset == []  # nothing failed any more


def test_retry_refuses_a_request_that_names_nothing(imported: Backend) -> None:
    with pytest.raises(ServiceError, match="--all-failed needs --stage"):
        retry(imported, RetryRequest(all_failed=True), "ops")
    with pytest.raises(ServiceError, match="name sessions to retry"):
        retry(imported, RetryRequest(), "ops")
    with pytest.raises(ServiceError, match="unknown session 'nope'") as e:
        retry(imported, RetryRequest(sessions=["nope"]), "ops")
    assert e.value.code is ExitCode.FAILED


def test_history_at_a_moment_shows_the_stages_as_they_were(imported: Backend) -> None:
    clock = imported.clock
    assert isinstance(clock, Clock)
    before_failure = clock.advance(60)
    clock.advance(60)
    _fail_fetch(imported, FIRST)
    then = session_at(imported, FIRST, before_failure)
    now = session_at(imported, FIRST, clock.now)
    assert then.stages["TRANSCRIPT_FETCH"].status == "PENDING"
    assert now.stages["TRANSCRIPT_FETCH"].status == "FAILED"
    assert now.stages["TRANSCRIPT_FETCH"].error_message == "gone"
    with pytest.raises(ServiceError, match="did not exist yet"):
        session_at(imported, FIRST, T0 - timedelta(days=1))


def test_reprocess_forces_completed_stages_back_and_sets_the_model(imported: Backend) -> None:
    with imported.engine.connect() as conn:
        done = list_sessions(conn, Stage.CSV_IMPORT, Status.COMPLETED, None, 100)
    assert len(done) == 6
    with pytest.raises(ServiceError, match="importing the file again") as e:
        reprocess(imported, Stage.CSV_IMPORT, "ops")
    assert e.value.code is ExitCode.USAGE
    result = reprocess(imported, Stage.AI_ANALYSIS, "ops", company=ACME, model="m2")
    assert (result.reset, result.model) == (0, "m2")  # nothing analysed yet
    assert imported.app.get_company(ACME).ai_model == "m2"


def test_services_on_postgres(pg_url: str) -> None:
    with Runtime.open(pg_url, create=True) as rt:
        backend = Backend(app=rt.app, engine=rt.engine, runner=rt.runner, clock=Clock(T0))
        add_company(backend, ACME, CompanySettings(csv_url=str(SAMPLE_CSV)))
        assert import_csv(backend, ACME, SAMPLE_CSV, secrets={}.get, max_bytes=10**6).new == 6
        _fail_fetch(backend, FIRST)
        request = RetryRequest(stage=Stage.TRANSCRIPT_FETCH, all_failed=True)
        assert [r.external_id for r in retry(backend, request, "ops").reset] == [FIRST]
        assert _status(backend, FIRST, Stage.TRANSCRIPT_FETCH) is Status.PENDING
        assert session_history(backend, FIRST).session.company == ACME


def test_a_bad_credential_origin_is_a_usage_error_once_the_company_is_known(
    backend: Backend,
) -> None:
    with pytest.raises(ServiceError, match="unknown company"):
        update_company(backend, "Nope", CompanySettings(auth_scope=["not an origin"]))
    add_company(backend, ACME, CompanySettings(csv_url="/x.csv"))
    with pytest.raises(ServiceError) as e:
        update_company(backend, ACME, CompanySettings(auth_scope=["not an origin"]))
    assert e.value.code is ExitCode.USAGE
    assert list(backend.app.get_company(ACME).auth_scope) == []
