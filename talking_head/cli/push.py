"""``python -m talking_head push DIR --repo-id NAME``: upload a weights folder to the Hugging Face Hub."""

from __future__ import annotations

import argparse

from talking_head.training.hub import push_folder


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``push`` command's arguments to ``parser``."""
    parser.add_argument("folder", metavar="DIR", help="weights folder written by the export command")
    parser.add_argument(
        "--repo-id", required=True, metavar="NAME", help="Hub model repo, e.g. your-name/talking-head-cpu"
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="list the files that would be uploaded; no network"
    )
    parser.add_argument("--private", action="store_true", help="create the repo as private")
    parser.add_argument("--revision", help="branch to upload to (default: main)")
    parser.add_argument("--message", default="Upload talking-head weights", help="commit message")


def run(args: argparse.Namespace) -> int:
    """Upload (or list) and print the files."""
    files = push_folder(
        args.folder,
        args.repo_id,
        dry_run=args.dry_run,
        private=args.private,
        revision=args.revision,
        commit_message=args.message,
    )
    total = sum(size for _, size in files)
    verb = "would upload" if args.dry_run else "uploaded"
    for name, size in files:
        print(f"{size / 1e6:10.2f} MB  {name}")
    print(f"{verb} {len(files)} files ({total / 1e6:.2f} MB) to {args.repo_id}")
    return 0
