"""``python -m talking_head bench``: networks, fine-tuning, landmarks, end-to-end and rendering-runtime timings."""

from __future__ import annotations

import argparse
import dataclasses


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of the ``bench`` command."""
    parser.add_argument("--quick", action="store_true", help="seconds-long smoke run on the tiny preset")
    parser.add_argument("--presets", nargs="+", help="network presets to time (default: cpu paper)")
    parser.add_argument("--batch-sizes", nargs="+", type=int, help="batch sizes for E/G (default: 1 8)")
    parser.add_argument(
        "--repeats", type=int, help="timed runs per measurement (default 3; the median is reported)"
    )
    parser.add_argument(
        "--weights", help="weights folder or repo id for the end-to-end runs (default: random weights)"
    )
    parser.add_argument(
        "--clip-seconds", type=float, help="length of the synthetic driving clip (default 10)"
    )
    parser.add_argument("--landmarks", choices=("auto", "fan", "dlib"), help="landmark detector to time")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    parser.add_argument(
        "--precision",
        choices=("auto", "bf16", "fp32"),
        help="precision of the fine-tuning and end-to-end runs (default auto); "
        "fp32 and bf16 are also timed side by side",
    )
    parser.add_argument(
        "--compare-precisions",
        nargs="*",
        choices=("fp32", "bf16"),
        help="precisions timed side by side (default: fp32 bf16; none: skip)",
    )
    parser.add_argument(
        "--runtime",
        choices=("auto", "onnx", "torch"),
        help="rendering runtime of the end-to-end runs (default: $TALKING_HEAD_RUNTIME, else auto)",
    )
    parser.add_argument(
        "--runtime-batches",
        nargs="*",
        type=int,
        help="batch sizes of the rendering side-by-side: PyTorch fp32, PyTorch bf16, ONNX Runtime "
        "(default: 1 8; none: skip)",
    )
    parser.add_argument(
        "--only-runtimes", action="store_true", help="run the rendering side-by-side alone (a minute or so)"
    )
    parser.add_argument(
        "--native-faces",
        nargs="*",
        type=int,
        help="face sizes (px) of the whole-photo output at 1024 timed against the 256² path "
        "(default: 256 384 512; none: skip)",
    )
    parser.add_argument("--native-photos", nargs="*", help="photos timed there as well (at their own size up to 1024)")
    parser.add_argument("--only-native", action="store_true", help="run the native-output timings alone")
    parser.add_argument("--out", help="write results as JSON here and the table next to it (.txt)")


def run(args: argparse.Namespace) -> int:
    """Run the benchmarks, print the machine and the tables, optionally write them."""
    from talking_head.evaluation.bench import BenchConfig, format_table, run_benchmarks, write_results

    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    config = BenchConfig.quick() if args.quick else BenchConfig()
    overrides = {
        "presets": tuple(args.presets) if args.presets else None,
        "batch_sizes": tuple(args.batch_sizes) if args.batch_sizes else None,
        "repeats": args.repeats,
        "weights": args.weights,
        "clip_seconds": args.clip_seconds,
        "landmarks_backend": args.landmarks,
        "precision": args.precision,
        "compare_precisions": tuple(args.compare_precisions) if args.compare_precisions is not None else None,
        "runtime": args.runtime,
        "runtime_batches": tuple(args.runtime_batches) if args.runtime_batches is not None else None,
        "only_runtimes": args.only_runtimes or None,
        "native_faces": tuple(args.native_faces) if args.native_faces is not None else None,
        "native_photos": tuple(args.native_photos) if args.native_photos else None,
        "only_native": args.only_native or None,
    }
    config = dataclasses.replace(config, **{k: v for k, v in overrides.items() if v is not None})
    results = run_benchmarks(config, progress=lambda msg: print(msg, flush=True))
    print()
    print(format_table(results), end="")
    if args.out:
        json_path, table_path = write_results(results, args.out)
        print(f"wrote {json_path} and {table_path}")
    failed = [k for k, v in results.items() if isinstance(v, dict) and "error" in v]
    return 1 if failed else 0
