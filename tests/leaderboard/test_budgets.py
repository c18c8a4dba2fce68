from leaderboard.budgets import GiB, fitting


def test_gpu_budgets_from_peak_device_memory():
    assert fitting(7 * GiB, None) == ["8 GB laptop GPU", "T4 16 GB", "A100 80 GB"]
    assert fitting(14 * GiB, None) == ["T4 16 GB", "A100 80 GB"]
    assert fitting(15 * GiB + 1, None) == ["A100 80 GB"]
    assert fitting(81 * GiB, None) == []


def test_cpu_budget_from_peak_host_memory():
    assert fitting(None, 2 * GiB) == ["16 GB CPU machine"]
    assert fitting(None, 13 * GiB) == []


def test_nothing_without_a_measured_peak():
    assert fitting(None, None) == []
