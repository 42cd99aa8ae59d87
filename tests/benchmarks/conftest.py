"""pytest-benchmark setup: the machine record names the device and the torch/triton versions."""

import torch


def pytest_benchmark_update_machine_info(config, machine_info):
    import kanbench

    machine_info["torch"] = torch.__version__
    try:
        import triton

        machine_info["triton"] = triton.__version__
    except ImportError:
        machine_info["triton"] = None
    machine_info["kanbench"] = kanbench.__version__
    machine_info["device"] = torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"
    machine_info["torch_threads"] = torch.get_num_threads()
