"""The legacy companies chosen and registered as ours, in one transaction before any session.

A company's id derives from its name, so names are made unique regardless of case first; a company
an earlier run registered is reported "already present" and keeps its current status.
"""

from __future__ import annotations

from collections.abc import Sequence
from uuid import UUID

from domain.company import Company, CompanyStatus, company_id_for
from domain.errors import CompanyError
from processors.legacy.options import LegacyMigrationError, MigrationOptions
from processors.legacy.records import LegacyCompany
from processors.legacy.report import CompanyResult, MigrationReport
from processors.legacy.source import LegacySource
from store.application import LiveDashApp


def unique_names(companies: Sequence[LegacyCompany]) -> tuple[dict[str, str], list[str]]:
    """Our company names: unique regardless of case, as `company_id_for` needs."""
    names: dict[str, str] = {}
    taken: set[str] = set()
    warnings = []
    for c in companies:
        name = c.name.strip() or f"legacy company {c.id[:8]}"
        if name.casefold() in taken:
            new = f"{name} (legacy {c.id[:8]})"
            warnings.append(
                f"two legacy companies are named {name!r}: the one with id {c.id} is "
                f"migrated as {new!r}"
            )
            name = new
        taken.add(name.casefold())
        names[c.id] = name
    return names, warnings


def company_status(value: str | None) -> CompanyStatus:
    if not value:
        return CompanyStatus.ACTIVE
    try:
        return CompanyStatus.parse(value)
    except ValueError:
        return CompanyStatus.ACTIVE


class Companies:
    """Chooses the companies to migrate and registers them, noting both in the report."""

    def __init__(
        self,
        source: LegacySource,
        app: LiveDashApp | None,
        options: MigrationOptions,
        report: MigrationReport,
    ) -> None:
        self.source = source
        self.app = app
        self.options = options
        self.report = report
        self.report_names: dict[str, str] = {}
        """legacy company id -> our (unique) name."""

    def select(self) -> list[LegacyCompany]:
        companies = self.source.companies()
        wanted = self.options.company
        if wanted is None:
            return companies
        chosen = [c for c in companies if c.name.strip().casefold() == wanted.strip().casefold()]
        if not chosen:
            known = ", ".join(sorted(c.name for c in companies)) or "none"
            raise LegacyMigrationError(
                f"no legacy company named {wanted!r} (the legacy database has: {known})"
            )
        return chosen

    def register(self, companies: Sequence[LegacyCompany]) -> dict[str, UUID]:
        names, warnings = unique_names(self.source.companies())
        self.report_names = names
        self.report.warnings.extend(w for w in warnings if any(c.id in w for c in companies))
        ids: dict[str, UUID] = {}
        results: list[CompanyResult] = []
        new: list[Company] = []
        for c in companies:
            name = names[c.id]
            cid = company_id_for(name)
            ids[c.id] = cid
            status = company_status(c.status)
            if c.status and status.value != c.status.upper():
                self.report.warnings.append(
                    f"company {name}: unknown legacy status {c.status!r}, migrated as ACTIVE"
                )
            existing = self._existing_company(cid)
            if existing is not None:
                results.append(
                    CompanyResult(
                        name=existing.name,
                        legacy_id=c.id,
                        company_id=cid,
                        status=existing.status.value,
                        action="already present",
                    )
                )
                status = existing.status
            else:
                csv_url = c.csv_url.strip()
                if not csv_url:
                    csv_url = f"legacy-company-{c.id}-has-no-csv-url"
                    self.report.warnings.append(
                        f"company {name}: the legacy company has no CSV URL; set one before "
                        "importing"
                    )
                try:
                    company = Company.register(
                        name,
                        csv_url,
                        c.created_at,
                        username=(c.username or "").strip() or None,
                        password_ref=None,
                        timezone=self.options.timezone,
                        status=status,
                    )
                except CompanyError as e:
                    raise LegacyMigrationError(f"company {name}: {e}") from None
                new.append(company)
                results.append(
                    CompanyResult(
                        name=name,
                        legacy_id=c.id,
                        company_id=cid,
                        status=status.value,
                        action="migrated",
                    )
                )
            if c.has_password:
                self.report.warnings.append(
                    f"set a credential reference for company {name}: the legacy password was "
                    "not copied"
                )
            if status is not CompanyStatus.ACTIVE:
                self.report.warnings.append(
                    f"company {name} is {status.value}: its sessions wait until "
                    f"`livedash company activate {name}`"
                )
        if new and not self.options.dry_run:
            assert self.app is not None
            result = self.app.save_batch(new)
            for lost in result.lost:
                assert isinstance(lost, Company)
                for r in results:
                    if r.company_id == lost.id:
                        r.action = "already present"
        self.report.companies = {
            "migrated": sum(1 for r in results if r.action == "migrated"),
            "already_present": sum(1 for r in results if r.action == "already present"),
            "details": [r.model_dump(mode="json") for r in results],
        }
        return ids

    def _existing_company(self, cid: UUID) -> Company | None:
        if self.app is None:
            return None
        try:
            return self.app.get_company(cid)
        except CompanyError:
            return None
