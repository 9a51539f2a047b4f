"""`livedash run` picks its analyser from the environment, through the real command.

With an API key the OpenAI analyser talks to the local OpenAI-compatible server and every paid
response shows up in `livedash costs`; without one the offline analyser runs and the command
says so once; an unknown provider is a usage error with a hint.
"""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy import select

from projections.schema import shared_limits
from tests.conftest import Livedash
from tests.harness import runtime
from tests.openai_server import FakeOpenAI
from tests.servers import RouteServer, text

CHAT = (
    "[01.10.2026 10:00:05] User: Hallo, ik ben ziek. Wie moet ik bellen?\n"
    "[01.10.2026 10:00:09] Assistant: Meld je ziek bij je leidinggevende.\n"
)


def export(tmp_path: Path, server: RouteServer, n: int) -> Path:
    lines = []
    for i in range(n):
        server.routes[f"/c{i}.txt"] = text(CHAT)
        lines.append(
            f"ai-{i},01.10.2026 10:00:00,01.10.2026 10:05:00,192.0.2.1,NL,dutch,2,happy,"
            f"no,no,{server.url(f'/c{i}.txt')},2.5,100,0.0010,Sick,hallo\n"
        )
    path = tmp_path / "ai.csv"
    path.write_text("".join(lines), encoding="utf-8")
    return path


def prepare(livedash: Livedash, csv: Path) -> None:
    livedash("init")
    livedash("company", "add", "AI Co", "--csv-url", str(csv))
    livedash("import", str(csv), "--company", "AI Co")


def run_until_idle(livedash: Livedash, **env: str) -> tuple[int, str, str]:
    job = Livedash(livedash.database_url, livedash.cwd, {**livedash.env, **env})
    result = job(
        "run", "--until-idle", "--csv-interval", "0", "--poll-interval", "0.2", check=False
    )
    return result.code, result.stdout, result.stderr


def test_openai_provider_through_the_command(livedash: Livedash, tmp_path: Path) -> None:
    with RouteServer() as chats, FakeOpenAI(api_key="sk-cli") as ai:
        prepare(livedash, export(tmp_path, chats, 3))
        code, _out, err = run_until_idle(
            livedash,
            OPENAI_API_KEY="sk-cli",
            OPENAI_BASE_URL=ai.base_url,
            LIVEDASH_AI_MODEL="gpt-4o-mini",
            LIVEDASH_FETCH_ALLOW_HOSTS="127.0.0.1",
            LIVEDASH_AI_RATE_LIMITS="*=6000/",
        )
        assert code == 0, err
        assert "offline analyser" not in err
        paid = ai.paid
    assert paid == 3
    if livedash.database_url.startswith("postgresql"):  # the fleet's limit is a row
        with runtime(livedash.database_url) as rt, rt.engine.connect() as conn:
            keys = conn.execute(select(shared_limits.c.key)).scalars().all()
        assert keys == ["rate:gpt-4o-mini:requests"]
    costs = json.loads(livedash("costs", "--json").stdout)
    assert costs["requests"] == 3
    assert costs["total_tokens"] > 0
    assert costs["total_cost_eur"] > 0
    events = json.loads(livedash("history", "ai-0", "--company", "AI Co", "--json").stdout)
    analysed = [e for e in events["events"] if e["event"] == "AnalysisRecorded"]
    assert [e["data"]["provider"] for e in analysed] == ["openai"]
    usage = [e for e in events["events"] if e["event"] == "AIUsageRecorded"]
    assert len(usage) == 1 and usage[0]["data"]["cost_eur"] is not None
    report = json.loads(livedash("report", "--json").stdout)
    assert report["analyses_by_provider"] == {"openai": 3}
    assert report["analyses_offline"] == 0
    assert "offline analyser" not in livedash("report").stdout


def test_no_key_means_offline_and_says_so_once(livedash: Livedash, tmp_path: Path) -> None:
    with RouteServer() as chats:
        prepare(livedash, export(tmp_path, chats, 2))
        code, _out, err = run_until_idle(
            livedash, OPENAI_API_KEY="  ", LIVEDASH_FETCH_ALLOW_HOSTS="127.0.0.1"
        )
    assert code == 0, err
    assert err.count("offline analyser") == 1, err
    costs = json.loads(livedash("costs", "--json").stdout)
    assert costs["requests"] == 0
    for i in range(2):
        events = json.loads(livedash("history", f"ai-{i}", "--company", "AI Co", "--json").stdout)
        analysed = [e for e in events["events"] if e["event"] == "AnalysisRecorded"]
        assert [e["data"]["provider"] for e in analysed] == ["offline"]
    report = json.loads(livedash("report", "--json").stdout)
    assert report["analyses_offline"] == 2 == report["analysed_sessions"]
    assert report["analyses_by_provider"] == {"offline": 2}
    assert "2 of 2 analyses came from the offline analyser" in livedash("report").stdout


def test_offline_chosen_explicitly_is_announced_too(livedash: Livedash, tmp_path: Path) -> None:
    with RouteServer() as chats:
        prepare(livedash, export(tmp_path, chats, 1))
        code, _out, err = run_until_idle(
            livedash,
            LIVEDASH_AI_PROVIDER="offline",
            OPENAI_API_KEY="sk-unused",
            LIVEDASH_FETCH_ALLOW_HOSTS="127.0.0.1",
        )
    assert code == 0, err
    assert err.count("offline analyser") == 1, err
    assert "LIVEDASH_AI_PROVIDER=offline" in err
    report = json.loads(livedash("report", "--json").stdout)
    assert report["analyses_offline"] == 1


def test_the_offline_label_is_the_one_reports_count() -> None:
    from processors.ai.offline import PROVIDER
    from projections.analytics_queries import OFFLINE_PROVIDER

    assert PROVIDER == OFFLINE_PROVIDER


def test_unknown_provider_is_a_usage_error(livedash: Livedash, tmp_path: Path) -> None:
    with RouteServer() as chats:
        prepare(livedash, export(tmp_path, chats, 1))
        code, _out, err = run_until_idle(livedash, LIVEDASH_AI_PROVIDER="claude")
    assert code == 2, err
    assert "LIVEDASH_AI_PROVIDER" in err
    assert "offline" in err  # the hint names the choices


def test_openai_chosen_without_a_key_is_an_error(livedash: Livedash, tmp_path: Path) -> None:
    with RouteServer() as chats:
        prepare(livedash, export(tmp_path, chats, 1))
        code, _out, err = run_until_idle(livedash, LIVEDASH_AI_PROVIDER="openai")
    assert code == 2, err
    assert "OPENAI_API_KEY" in err
