"""`kerasdl serve` refuses an out-of-range flag before anything loads: exit code 2 and
one log line naming the flag, what it accepts and the value received (no traceback)."""

import os
import subprocess
import sys

import pytest
from conftest import REPO, free_port

from kerasdl.serving import server as server_module


@pytest.fixture
def no_server(monkeypatch):
    """A flag check that lets a bad value through fails the test instead of serving."""

    def accepted(*args, **kwargs):
        raise AssertionError("the flag was accepted: the server was about to start")

    monkeypatch.setattr(server_module, "build_app", accepted)
    monkeypatch.setattr(server_module, "_run_workers", accepted)


@pytest.mark.parametrize(
    "flags, message",
    [
        (
            ["--max_connections=-1"],
            (
                "--max_connections must be 0 (half the open-file limit, at most 1000) "
                "or a positive number. Received: max_connections=-1"
            ),
        ),
        (
            ["--max_body_bytes=0"],
            "--max_body_bytes must be >= 1. Received: max_body_bytes=0",
        ),
        (
            ["--max_body_bytes=-5"],
            "--max_body_bytes must be >= 1. Received: max_body_bytes=-5",
        ),
        (
            ["--num_inference_threads=-1"],
            (
                "--num_inference_threads must be 0 (2 per CPU, at most 8) or a positive "
                "number. Received: num_inference_threads=-1"
            ),
        ),
        (
            ["--tensorflow_intra_op_parallelism=-2"],
            (
                "--tensorflow_intra_op_parallelism must be 0 (TensorFlow picks) or a "
                "positive number. Received: tensorflow_intra_op_parallelism=-2"
            ),
        ),
        (
            ["--rest_api_port=70000"],
            "--rest_api_port must be in [0, 65535]. Received: rest_api_port=70000",
        ),
        (
            ["--rest_api_port=-1"],
            "--rest_api_port must be in [0, 65535]. Received: rest_api_port=-1",
        ),
        (
            ["--port=-1"],
            "--port must be 0 (gRPC off) or in [1, 65535]. Received: port=-1",
        ),
        (
            ["--graceful_shutdown_seconds=-1"],
            (
                "--graceful_shutdown_seconds must be a finite number >= 0. "
                "Received: graceful_shutdown_seconds=-1.0"
            ),
        ),
        (
            ["--request_timeout_seconds=nan"],
            (
                "--request_timeout_seconds must be a finite number > 0. "
                "Received: request_timeout_seconds=nan"
            ),
        ),
        (
            ["--keep_alive_timeout_seconds=inf"],
            (
                "--keep_alive_timeout_seconds must be a finite number > 0. "
                "Received: keep_alive_timeout_seconds=inf"
            ),
        ),
        (
            ["--enable_batching", "--max_batch_size=0"],
            "--max_batch_size must be >= 1. Received: max_batch_size=0",
        ),
        (
            ["--enable_batching", "--batch_timeout_micros=-1"],
            "--batch_timeout_micros must be >= 0. Received: batch_timeout_micros=-1",
        ),
        (
            ["--enable_batching", "--num_batch_threads=0"],
            "--num_batch_threads must be >= 1. Received: num_batch_threads=0",
        ),
    ],
)
def test_bad_flag_values_are_refused_with_what_is_expected(
    capsys, tmp_path, no_server, flags, message
):
    code = server_module.main(["--model_base_path", str(tmp_path), "--port=0", *flags])
    assert code == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line]
    assert len(errors) == 1, errors
    assert errors[0].endswith(message), errors[0]


@pytest.mark.parametrize(
    "flag",
    [
        "--max_connections=0",  # 0 is "auto", as the limits table says
        "--num_inference_threads=0",
        "--graceful_shutdown_seconds=0",
        "--batch_timeout_micros=0",
        "--max_batch_size=0",  # ignored without --enable_batching, as in TF Serving
    ],
)
def test_boundary_values_are_accepted(tmp_path, no_server, flag):
    with pytest.raises(AssertionError, match="about to start"):
        server_module.main(["--model_base_path", str(tmp_path), "--port=0", flag])


def test_the_command_line_exits_2_with_one_line_and_no_traceback(tmp_path):
    result = subprocess.run(  # noqa: PLW1510 -- the status is asserted
        [
            sys.executable,
            "-m",
            "kerasdl.serving",
            f"--model_base_path={tmp_path}",
            f"--rest_api_port={free_port()}",
            "--port=0",
            "--enable_batching",
            "--max_batch_size=0",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    assert result.returncode == 2, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if "kerasdl.serving" in line]
    assert lines == [
        lines[0].split(" ERROR ")[0]
        + " ERROR kerasdl.serving: --max_batch_size must be >= 1. "
        "Received: max_batch_size=0"
    ], result.stderr
