"""Worker command lines: one process, or one per GPU through `accelerate launch` (not runnable on CPU here)."""

from __future__ import annotations

import sys

from services.trainer.launch import WORKER_MODULE, worker_command


def test_one_device_runs_the_worker_module_directly(tmp_path):
    assert worker_command(tmp_path) == [sys.executable, "-m", WORKER_MODULE, str(tmp_path)]


def test_several_devices_launch_through_accelerate(tmp_path):
    command = worker_command(tmp_path, num_devices=4, python="/opt/py", main_port=29511)
    assert command[:3] == ["/opt/py", "-m", "accelerate.commands.launch"]
    assert command[-3:] == ["-m", WORKER_MODULE, str(tmp_path)]
    assert command[command.index("--num_processes") + 1] == "4"
    assert "--multi_gpu" in command and command[command.index("--main_process_port") + 1] == "29511"


def test_accelerate_accepts_the_launch_arguments(tmp_path):
    from accelerate.commands.launch import launch_command_parser

    args = launch_command_parser().parse_args(worker_command(tmp_path, num_devices=2)[3:])
    assert (args.num_processes, args.multi_gpu, args.module) == (2, True, True)
    assert args.training_script == WORKER_MODULE and args.training_script_args == [str(tmp_path)]
