"""A method whose step must synchronise with the host on a GPU says so (``Method.host_sync``), and its
steps are then never captured in a CUDA graph: KDSVD (torch's SVD), and a plugin's method the same way
(tests/plugin_example's ``logit_spectrum``). Decided without a GPU: the decision is a pure function."""

from __future__ import annotations

import json
import subprocess
import sys

import torch

from kdcore.config import RunConfig
from kdcore.registry import METHODS
from kdcore.training.steps import graphs_apply
from tests.test_plugins import _env, plugin_path  # noqa: F401  (the installed example package)

CUDA = torch.device("cuda")


def test_kdsvd_declares_its_sync_and_is_never_captured():
    assert METHODS["kdsvd"].host_sync and not METHODS["kd"].host_sync
    assert graphs_apply(RunConfig(kind="kd"), CUDA)
    assert not graphs_apply(RunConfig(kind="kdsvd"), CUDA)
    assert not graphs_apply(RunConfig(kind="kd"), torch.device("cpu"))


def test_a_plugin_method_declares_its_sync_the_same_way_and_trains(plugin_path, tmp_path, teacher_checkpoint):  # noqa: F811
    # One process (torch imports once): the declaration as the engine reads it, then a CPU run from the CLI.
    code = ("import sys, torch; from kdcore.config import RunConfig; from kdcore.registry import METHODS; "
            "from kdcore.training.steps import graphs_apply; from kdcore.cli import main; "
            "print(repr(METHODS['logit_spectrum'].host_sync), graphs_apply(RunConfig(kind='logit_spectrum'), "
            "torch.device('cuda')), file=sys.stderr); sys.exit(main(sys.argv[1:]))")
    args = ["train", "logit_spectrum", "--dataset", "synthetic", "--subset", "100", "--epochs", "1", "--device", "cpu",
            "--arch", "tiny_cnn", "--teacher", str(teacher_checkpoint), "--out", str(tmp_path / "run")]
    result = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                            env=_env(plugin_path, tmp_path), timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    declared = result.stderr.splitlines()[0]
    assert "svdvals" in declared and declared.endswith(" False")
    assert json.loads(result.stdout.strip().splitlines()[-1])["kind"] == "logit_spectrum"
