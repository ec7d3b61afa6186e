"""The serving benchmark's naive peer is a fair peer only if it answers what our /classify
answers: both started for real, the same bodies posted to each, the labels compared."""

from collections.abc import Iterator

import httpx
import numpy as np
import pytest

from benchmarks.serve_throughput import body, start_peer, start_server
from benchmarks.serve_throughput import test_images as fashion_images  # not a test
from harness.server import LocalServer
from tests.conftest import DEFAULT_BUNDLE

IMAGES = 32


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LocalServer, LocalServer]]:
    work = tmp_path_factory.mktemp("peer")
    (work / "service").mkdir()
    ours, _ = start_server(DEFAULT_BUNDLE, work / "service", batching=True)
    try:
        peer = start_peer(DEFAULT_BUNDLE, work)
        try:
            yield ours, peer
        finally:
            peer.stop()
    finally:
        ours.stop()


def post(server: LocalServer, content: bytes) -> dict:
    answer = httpx.post(
        f"{server.url}/classify",
        content=content,
        headers={"content-type": "application/json"},
        timeout=30,
    )
    assert answer.status_code == 200, answer.text
    return answer.json()


@pytest.mark.slow
def test_the_peer_gives_our_label_and_score_for_the_benchmarks_bodies(
    servers: tuple[LocalServer, LocalServer],
) -> None:
    ours, peer = servers
    images = fashion_images(IMAGES)
    for n in range(IMAGES):
        content = body(images[n : n + 1])[:-1] + b',"k":3}'  # the benchmark's /classify body
        [mine] = post(ours, content)["results"]
        [theirs] = post(peer, content)["results"]
        assert theirs["label"] == mine["label"], n
        assert theirs["score"] == pytest.approx(mine["score"], abs=1e-5), n


@pytest.mark.slow
def test_the_peer_classifies_several_inputs_of_one_request(
    servers: tuple[LocalServer, LocalServer],
) -> None:
    ours, peer = servers
    content = body(fashion_images(4))
    mine, theirs = post(ours, content)["results"], post(peer, content)["results"]
    assert [r["label"] for r in theirs] == [r["label"] for r in mine]
    assert np.allclose([r["score"] for r in theirs], [r["score"] for r in mine], atol=1e-5)
    assert set(theirs[0]) == {"label", "score"}
