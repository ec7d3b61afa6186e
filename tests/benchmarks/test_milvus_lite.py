"""The Milvus Lite benchmark's report from made-up figures (its quick run starts two
servers and fills them: `python benchmarks/milvus_lite.py --quick` by hand)."""

from benchmarks.milvus_lite import StoreFigures, report


def test_the_report_gives_each_requests_percentiles_and_the_writers_rate() -> None:
    lite = StoreFigures("milvus (Milvus Lite)", 4000)
    lite.latencies["GET /items/{id}"] = [0.096] * 99 + [0.5]
    lite.latencies["GET /neighbors, k 10"] = [0.2, 0.21, 0.22]
    lite.written, lite.writing_s = 730, 10.0
    embedded = StoreFigures("embedded", 4000, {"GET /items/{id}": [0.001, 0.001]}, 40_000, 10.0)
    text = report([embedded, lite])
    assert "| embedded | GET /items/{id} | 2 | 1.0 | 1.0 |" in text
    assert "| milvus (Milvus Lite) | GET /items/{id} | 100 | 96.0 | 100.0 |" in text
    assert "| milvus (Milvus Lite) | GET /neighbors, k 10 | 3 | 210.0 | 219.8 |" in text
    assert "| milvus (Milvus Lite) | 73 | 730 | 10.0 |" in text
    assert "| embedded | 4,000 | 40,000 | 10.0 |" in text
    assert "filled with 4,000 items" in text
