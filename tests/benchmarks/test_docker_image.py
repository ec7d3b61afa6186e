"""The Docker benchmark's reading of the smoke test's output, from a made-up transcript (the
run itself needs a Docker daemon and builds the image: minutes)."""

from benchmarks.docker_image import GpuImage, gpu_report, parse, report

TRANSCRIPT = """
[smoke   0s] build (docker compose build corel)
#8 DONE 1.2s
built corel-embed:cpu in 96.4 s: 708 MB

[smoke  97s] up (docker compose up -d corel) and wait for healthy
first start: /readyz 200 after 9.1 s, docker healthy after 11.7 s (since the command)
after restart: /readyz 200 after 4.6 s, docker healthy after 7.2 s (since the command)
after recreate: /readyz 200 after 8.0 s, docker healthy after 10.3 s (since the command)
[smoke] PASS in 314 s
"""


def test_the_figures_of_the_smoke_test_become_one_table() -> None:
    smoke = parse(TRANSCRIPT)
    assert (smoke.image, smoke.build_s, smoke.size_mb) == ("corel-embed:cpu", 96.4, 708)
    assert smoke.starts == {
        "first start": (9.1, 11.7),
        "after restart": (4.6, 7.2),
        "after recreate": (8.0, 10.3),
    }
    assert smoke.total_s == 314
    text = report(smoke, "20.10.24, compose 2.21", [("401MB", "`RUN pip install`")])
    assert "| CPU image | `corel-embed:cpu`: 708 MB |" in text
    assert "| first start: command to `/readyz` 200 / to `healthy` | 9.1 s / 11.7 s |" in text
    assert "| the whole smoke test | 314 s |" in text
    assert "| 401MB | `RUN pip install` |" in text
    assert "Docker: 20.10.24, compose 2.21." in text


def test_a_smoke_test_that_stopped_early_has_no_total() -> None:
    smoke = parse("built corel-embed:cpu in 3.0 s: 700 MB\n[smoke] FAIL: no corel container\n")
    assert smoke.total_s is None and smoke.starts == {}
    assert "| the whole smoke test | - |" in report(smoke, "?", [])


def test_the_gpu_image_gets_its_own_table_with_what_it_answered_without_a_gpu() -> None:
    gpu = GpuImage(
        "corel-embed:gpu",
        412.0,
        3_950,
        [("3.5GB", "`COPY dir:venv`")],
        ready_s=21.4,
        ready={"status": "ready", "provider": "CPUExecutionProvider"},
    )
    text = gpu_report(gpu)
    assert "| GPU image | `corel-embed:gpu`: 3,950 MB |" in text
    assert "| `docker run` on this machine (no GPU) to `/readyz` 200 | 21.4 s |" in text
    assert '"provider": "CPUExecutionProvider"' in text
    assert "| 3.5GB | `COPY dir:venv` |" in text
    never = gpu_report(GpuImage("corel-embed:gpu", 1.0, 1, [], ready_s=None, ready={}))
    assert "| `docker run` on this machine (no GPU) to `/readyz` 200 | never answered |" in never
