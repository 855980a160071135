"""The user docs cannot drift from the code: every global config key has a row in
docs/configuration.md (and no row names a key that is gone), every metric name the docs
give is one the engine defines (as Ray exports it, ``ray_`` + the name), the README stays
short, and every relative link in the README and docs/ points at a file that exists."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from engine.config.defaults import DEFAULT_VALUES

ROOT = Path(__file__).resolve().parents[3]
DOCS = sorted((ROOT / "docs").glob("*.md"))
USER_DOCS = [ROOT / "README.md", *DOCS]

ROW_KEY = re.compile(r"^\|\s*`([a-z_][a-z0-9_]*)`\s*\|")


def config_table_keys(text: str) -> list[str]:
    """Keys of the rows of the "Global keys" table in docs/configuration.md."""
    section = text.split("## Global keys", 1)[1]
    section = section.split("\n## ", 1)[0]
    return [m.group(1) for line in section.splitlines() if (m := ROW_KEY.match(line))]


def test_config_table_parser_reads_rows_only() -> None:
    text = "## Global keys\n\n| key | default |\n|---|---|\n| `api_port` | `8000` |\n| `x_y` | 1 |\n\n## Other\n| `nope` | 1 |\n"
    assert config_table_keys(text) == ["api_port", "x_y"]


def test_every_global_key_is_documented_once_and_no_stale_key() -> None:
    keys = config_table_keys((ROOT / "docs" / "configuration.md").read_text())
    assert sorted(set(DEFAULT_VALUES) - set(keys)) == [], "keys without a row in docs/configuration.md"
    assert sorted(set(keys) - set(DEFAULT_VALUES)) == [], "rows for keys DEFAULT_VALUES no longer has"
    assert len(keys) == len(set(keys)), "a key has two rows"


def defined_metric_names() -> set[str]:
    source = (ROOT / "actors" / "metrics.py").read_text()
    return set(re.findall(r'"(lts_[a-z0-9_]+)"', source))


def test_documented_metric_names_are_the_exported_ones() -> None:
    defined = defined_metric_names()
    assert defined, "actors/metrics.py defines no lts_* metric"
    exported = {f"ray_{name}" for name in defined}
    for doc in USER_DOCS:
        text = doc.read_text()
        # A histogram is also exported as <name>_bucket, _sum and _count.
        named = {re.sub(r"_(bucket|sum|count)$", "", m) for m in re.findall(r"\bray_lts_[a-z0-9_]*[a-z0-9]", text)}
        assert named <= exported, f"{doc.name}: metrics the engine does not export: {sorted(named - exported)}"
        # A bare lts_* metric name (without Ray's prefix) is what users do not find.
        bare = {m for m in re.findall(r"(?<![a-z_])lts_[a-z0-9_]+", text) if m in defined}
        assert not bare, f"{doc.name}: metric names without Ray's ray_ prefix: {sorted(bare)}"
    readme = (ROOT / "README.md").read_text()
    assert set(re.findall(r"\bray_lts_[a-z0-9_]*[a-z0-9]", readme)) == exported, "README lists every metric"


def test_readme_is_short() -> None:
    assert len((ROOT / "README.md").read_text().splitlines()) <= 250


LINK = re.compile(r"\]\(([^)#\s]+)(#[^)]*)?\)")


@pytest.mark.parametrize("doc", USER_DOCS, ids=lambda p: p.name)
def test_relative_links_resolve(doc: Path) -> None:
    for target, _anchor in LINK.findall(doc.read_text()):
        if re.match(r"[a-z]+://", target) or target.startswith("mailto:"):
            continue
        assert (doc.parent / target).exists(), f"{doc.relative_to(ROOT)} links to a missing {target}"
