"""MkDocs hook: publish the study reports (``experiments/*/report.md`` and their figures) in the site.

The reports are written by ``emotrace study`` into ``experiments/`` at the repository root, beside
their ``results.json``; the site shows them under the same paths instead of keeping a copy in
``docs/`` that would drift from what the studies wrote.
"""

from __future__ import annotations

from pathlib import Path

from mkdocs.config.defaults import MkDocsConfig
from mkdocs.structure.files import File, Files

ROOT = Path(__file__).resolve().parents[2]
EXPERIMENTS = ROOT / "experiments"
SUFFIXES = {".md", ".png", ".svg", ".jpg"}


def on_files(files: Files, config: MkDocsConfig) -> Files:
    """Add every report page and figure under ``experiments/`` (results.json stays out: up to 0.7 MB each)."""
    for path in sorted(EXPERIMENTS.rglob("*")):
        if path.is_file() and path.suffix in SUFFIXES:
            files.append(File(path.relative_to(ROOT).as_posix(), src_dir=str(ROOT),
                              dest_dir=config["site_dir"],
                              use_directory_urls=config["use_directory_urls"]))
    return files
