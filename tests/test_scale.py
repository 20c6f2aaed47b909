"""The scale bench (`make scale`, bench/scale.py) in short, asserting what it measures is right, not fast.

Twenty simulated agents against central as `meraapent central serve` runs it, on PostgreSQL, through a
private mosquitto: a card revoked or blocked through the API is refused by every agent; the caretakers' mix
at 100 requests/s for 3 s is answered without a server error; and every tap of the run (a few hundred, 5 %
of them sent twice) is stored exactly once. The timings of the full run belong in docs/benchmarks.md.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from bench.scale import ScaleOptions, measure
from bench.scale_central import postmaster_pid
from bench.scale_load import Plan, Targets
from tests.infra import MosquittoBroker, PostgresCluster, unique_db_name

SITES = 20
SHORT = ScaleOptions(
    sites=SITES,
    api_rates=(100.0,),
    api_seconds=3.0,
    api_connections=8,  # fewer than central's 15 database connections: see docs/benchmarks.md
    write_share=0.05,
    background_taps=10.0,
    ingest_rate=200.0,
    ingest_seconds=1.5,
    history_events=2000,
    alarms_per_site=2,
)


def test_a_short_scale_run_refuses_everywhere_answers_without_errors_and_stores_each_event_once(
    postgres_cluster: PostgresCluster, private_mosquitto: MosquittoBroker, tmp_path: Path
) -> None:
    url = postgres_cluster.create_database(unique_db_name())
    postmaster = postmaster_pid(postgres_cluster.data_dir)
    result = measure(SHORT, url, private_mosquitto, tmp_path, postmaster, say=lambda _text: None)

    propagation = result["propagation"]
    assert propagation["changes"] == ["revoke", "block", "unblock", "block"]
    assert propagation["refusals_missed"] == 0  # every agent refused the card after each change
    assert propagation["refusals_measured"] == 3 * SITES

    [api] = result["api"]
    assert api["answered"] == api["scheduled"] == 300
    assert api["statuses"] == {"200": 300}  # no server error, no request left without an answer
    assert {"events", "doors", "sites", "alarms", "people", "block"} <= set(api["by_kind"])

    ingest = result["ingest"]
    assert ingest["sites_sending"] == SITES
    assert ingest["duplicates_sent"] > 0  # agents resent events as if an ack had been lost
    assert ingest["run_events_stored"] == ingest["run_taps"] > ingest["events"] > 0
    assert ingest["duplicates_in_db"] == 0 and ingest["unacked"] == 0
    assert result["goals"]["exactly_once"]

    memory = result["memory"]
    assert memory["central_peak_rss_mb"][0] > 0 and memory["mosquitto_peak_rss_mb"] > 0
    assert memory["postgresql_peak_private_mb"] > 0


def test_the_load_mix_unblocks_only_cards_it_blocked_and_in_order() -> None:
    targets = Targets(sites=["fleet-0001"], credentials=[11, 12, 13], names=["fleet-0001"])
    plan = Plan(targets, seed=5, write_share=0.5)
    requests = [plan.next() for _ in range(400)]
    blocked: list[str] = []
    for kind, method, path in requests:
        card = path.split("/")[2] if method == "POST" else ""
        if kind == "block":
            blocked.append(card)
        elif kind == "unblock":
            assert card == blocked.pop(0)  # the oldest blocked card first, never one that is not blocked
    kinds = Counter(kind for kind, _m, _p in requests)
    assert kinds["block"] >= kinds["unblock"] > 50
    assert all(method == "GET" for kind, method, _p in requests if kind not in {"block", "unblock"})
