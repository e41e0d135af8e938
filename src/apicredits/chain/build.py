"""Compile ``contracts/*.vy`` into the JSON artifacts shipped in ``apicredits.chain.artifacts``.

One artifact per contract, ``<name>.json``::

    {"abi": [...], "bytecode": "0x...", "contract": name, "evm_version": "prague",
     "source_sha256": <sha256 of the .vy file>, "vyper": <compiler version>}

The output is deterministic (fixed compiler settings, sorted keys, a trailing newline), so a
rebuild from unchanged sources gives byte-identical files and a test can hold the committed
artifacts to the sources. Imports such as ``snekmate.auth`` resolve against the installed
snekmate package. Rebuild with ``python -m apicredits.chain.build``.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import sys
from importlib import resources
from pathlib import Path
from typing import Any

import vyper
from vyper.compiler import compile_from_file_input
from vyper.compiler.input_bundle import FilesystemInputBundle
from vyper.compiler.settings import OptimizationLevel, Settings

__all__ = ["EVM_VERSION", "build_all", "build_artifact", "load_artifact", "main"]

EVM_VERSION = "prague"
REPO_ROOT = Path(__file__).resolve().parents[3]
DEFAULT_CONTRACTS_DIR = REPO_ROOT / "contracts"
DEFAULT_OUT_DIR = Path(__file__).resolve().parent / "artifacts"


def _search_paths(contracts_dir: Path) -> list[Path]:
    """The contracts directory and the directory that holds the installed ``snekmate``."""
    paths: list[Path] = []
    spec = importlib.util.find_spec("snekmate")
    if spec is not None and spec.submodule_search_locations:
        paths.extend(Path(p).parent for p in spec.submodule_search_locations)
    # Vyper gives the last search path the highest precedence.
    paths.append(contracts_dir.resolve())
    return paths


def build_artifact(source_path: Path) -> dict[str, Any]:
    """Compile one contract and return its artifact."""
    source_path = source_path.resolve()
    source = source_path.read_bytes()
    bundle = FilesystemInputBundle(_search_paths(source_path.parent))
    file_input = bundle.load_file(source_path)
    settings = Settings(evm_version=EVM_VERSION, optimize=OptimizationLevel.GAS)
    output = compile_from_file_input(
        file_input, input_bundle=bundle, settings=settings, output_formats=["abi", "bytecode"]
    )
    return {
        "abi": output["abi"],
        "bytecode": str(output["bytecode"]),
        "contract": source_path.stem,
        "evm_version": EVM_VERSION,
        "source_sha256": hashlib.sha256(source).hexdigest(),
        "vyper": str(vyper.__version__),
    }


def dump_artifact(artifact: dict[str, Any]) -> str:
    """The artifact's canonical file content: sorted keys, indented, trailing newline."""
    return json.dumps(artifact, indent=2, sort_keys=True) + "\n"


def build_all(contracts_dir: Path, out_dir: Path) -> list[Path]:
    """Compile every ``contracts_dir/*.vy`` into ``out_dir/<name>.json``; return the paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for source_path in sorted(contracts_dir.glob("*.vy")):
        target = out_dir / f"{source_path.stem}.json"
        target.write_text(dump_artifact(build_artifact(source_path)), encoding="utf-8")
        written.append(target)
    return written


def load_artifact(name: str) -> dict[str, Any]:
    """Read the shipped artifact of contract ``name`` (e.g. ``"credit_vault"``)."""
    resource = resources.files("apicredits.chain").joinpath("artifacts").joinpath(f"{name}.json")
    try:
        text = resource.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise KeyError(f"no compiled artifact named {name!r}") from None
    artifact: dict[str, Any] = json.loads(text)
    return artifact


def main() -> None:
    """Rebuild the shipped artifacts from the repository's ``contracts/``."""
    for path in build_all(DEFAULT_CONTRACTS_DIR, DEFAULT_OUT_DIR):
        sys.stdout.write(f"{path}\n")


if __name__ == "__main__":
    main()
