"""GET /metrics: traffic by route template and status, the batcher, the indexes, and the
health of the embedding space."""

from tests.service.conftest import as_input, sample


def test_metrics_count_a_request_just_made(client) -> None:
    labels = {"method": "POST", "route": "/embed", "status": "200"}
    before = sample(client.get("/metrics").text, "corel_requests_total", **labels)
    response = client.post("/embed", json={"inputs": [{"data": [[0] * 28] * 28}]})
    assert response.status_code == 200
    text = client.get("/metrics").text
    assert sample(text, "corel_requests_total", **labels) == before + 1
    assert sample(text, "corel_request_seconds_count", **labels) >= 1
    assert sample(text, "corel_batch_size_count") >= 1
    assert sample(text, "corel_inference_seconds_count") >= 1
    assert sample(text, "corel_queue_wait_seconds_count") >= 1
    assert "corel_queue_items" in text


def test_metrics_label_routes_by_template_and_errors_by_status(client) -> None:
    client.delete("/classes/no-such-class")
    client.get("/no/such/route")
    text = client.get("/metrics").text
    assert sample(text, "corel_requests_total", route="/classes/{name}", status="404") >= 1
    assert sample(text, "corel_requests_total", route="unmatched", status="404") >= 1
    assert "no-such-class" not in text


def test_metrics_follow_the_embedding_space(client, fashion_sample) -> None:
    images, _ = fashion_sample
    before = client.get("/metrics").text
    result = client.post("/classify", json={"inputs": [as_input(images[0])]}).json()["results"][0]
    text = client.get("/metrics").text
    labels = {"label": result["label"], "unknown": str(result["unknown"]).lower()}
    assert (
        sample(text, "corel_classified_total", **labels)
        == sample(before, "corel_classified_total", **labels) + 1
    )
    for name in ("corel_classify_best_score_count", "corel_classify_margin_count"):
        assert sample(text, name) == sample(before, name) + 1


def test_metrics_report_index_sizes(client, fashion_sample) -> None:
    assert sample(client.get("/metrics").text, "corel_index_size", index="classes") == 10
    client.post("/classes", json={"name": "extra", "inputs": [as_input(fashion_sample[0][0])]})
    text = client.get("/metrics").text
    assert sample(text, "corel_index_size", index="classes") == 11
    assert 'corel_index_size{index="items"}' in text
