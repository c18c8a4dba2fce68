"""The example cluster config (examples/ray/cluster-a100-t4.yaml) is one Ray's cluster launcher accepts, and its node
types offer what the a100, t4 and cpu profiles' jobs ask for."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

ray = pytest.importorskip("ray", reason="Ray is not installed: scripts/setup-env.sh installs it where it has a wheel for this platform")
jsonschema = pytest.importorskip("jsonschema", reason="jsonschema comes with Ray; without it Ray's cluster schema cannot be checked")

from harness.run.ray_executor import fits, placement  # noqa: E402
from kompakt import paths  # noqa: E402
from kompakt.profiles import get_profile  # noqa: E402

CONFIG = paths.REPO_ROOT / "examples" / "ray" / "cluster-a100-t4.yaml"


def _config() -> dict:
    return yaml.safe_load(CONFIG.read_text(encoding="utf-8"))


def test_the_example_config_passes_rays_cluster_schema() -> None:
    import ray.autoscaler

    schema = json.loads((Path(ray.autoscaler.__file__).parent / "ray-schema.json").read_text())
    jsonschema.validate(_config(), schema)


def test_each_profile_has_a_node_type_its_jobs_fit_and_only_there() -> None:
    types = _config()["available_node_types"]
    offered = {name: {k: float(v) for k, v in t["resources"].items()} for name, t in types.items()}
    for profile, expected in (("a100", {"gpu_a100"}), ("t4", {"gpu_t4"}), ("cpu", set(types))):
        job = placement(get_profile(profile), threads=4, allow_other=False, nodes=list(offered.values()))
        assert {name for name, res in offered.items() if fits(job, res)} == expected, profile


def test_the_readme_shows_the_example() -> None:
    readme = (paths.REPO_ROOT / "README.md").read_text(encoding="utf-8")
    assert "examples/ray/cluster-a100-t4.yaml" in readme
