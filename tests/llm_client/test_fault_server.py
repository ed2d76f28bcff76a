"""The fault server's own detectors must be able to fire, or the chaos numbers mean nothing."""

from __future__ import annotations

import time

import httpx

from llm_client.fault_server import ChaosFaults, Fault, FaultServer, ServerLimits

BODY = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}


def test_server_rejects_over_limit_arrivals_and_counts_them():
    with FaultServer(limits=ServerLimits(rpm=3, window=60.0)) as server:
        codes = [
            httpx.post(server.base_url + "/chat/completions", json=BODY).status_code
            for _ in range(5)
        ]
        response = httpx.post(server.base_url + "/chat/completions", json=BODY)
        report = server.report()
    assert codes == [200, 200, 200, 429, 429]
    assert float(response.headers["retry-after-ms"]) > 0
    assert response.headers["x-ratelimit-remaining-requests"] == "0"
    assert report.limit_violations == 3


def test_server_flags_a_retry_that_comes_before_retry_after():
    with FaultServer() as server:
        server.script(Fault.rate_limited(5, "seconds"))
        headers = {"Idempotency-Key": "k1"}
        first = httpx.post(server.base_url + "/chat/completions", json=BODY, headers=headers)
        second = httpx.post(server.base_url + "/chat/completions", json=BODY, headers=headers)
        report = server.report()
    assert first.status_code == 429 and first.headers["retry-after"] == "5"
    assert second.status_code == 200
    assert report.early_retries == 1 and 4.0 < report.max_early_by_s <= 5.0


def test_server_flags_a_key_that_came_back_after_a_fatal_fault():
    with FaultServer() as server:
        server.script(Fault.status_code(400))
        for _ in range(2):
            httpx.post(
                server.base_url + "/chat/completions", json=BODY, headers={"Idempotency-Key": "k"}
            )
        assert server.report().retried_after_fatal == 1


def test_date_retry_after_is_rounded_up_to_a_whole_second():
    with FaultServer() as server:
        server.script(Fault.rate_limited(0.2, "date"))
        r = httpx.post(server.base_url + "/chat/completions", json=BODY)
    from email.utils import parsedate_to_datetime

    assert parsedate_to_datetime(r.headers["retry-after"]).timestamp() >= time.time()


def test_chaos_faults_are_a_pure_function_of_key_and_attempt():
    from llm_client.fault_server import ArrivalInfo

    chaos = ChaosFaults(seed=3, transient_rate=0.3)
    infos = [
        ArrivalInfo("/v1/chat/completions", f"key{i}", a, False, {})
        for i in range(300)
        for a in (1, 2)
    ]
    first = [chaos(i) for i in infos]
    assert first == [chaos(i) for i in infos]
    rate = sum(f is not None for f in first) / len(first)
    assert 0.22 < rate < 0.4


def test_models_endpoint_and_unknown_routes():
    with FaultServer(model="fm") as server:
        assert httpx.get(server.base_url + "/models").json()["data"][0]["id"] == "fm"
        assert httpx.post(server.base_url + "/nope", json={}).status_code == 404
        assert httpx.post(server.base_url + "/chat/completions", content=b"[").status_code == 400
