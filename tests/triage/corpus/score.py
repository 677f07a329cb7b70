"""How much of the corpus a kit triages right: ``python score.py [--kit DIR] [--list] [--table]``.

Prints, per source (the libraries, the healthy platform run, the fault profiles), how many testcases
triage to the (status, category) that expected.csv and profiles.csv give them. ``--kit DIR`` puts an
other checkout of the kit first on the path, e.g. main before a change::

    git -C /work/main archive main netra_nb | tar -x -C /tmp/main_kit
    python tests/triage/corpus/score.py --kit /tmp/main_kit

The files are decompressed into a temporary folder first, so a kit that cannot read ``.gz`` is scored
on the same bytes. ``--list`` prints every testcase triaged wrong.
"""

from __future__ import annotations

import argparse
import gzip
import sys
import tempfile
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kit", type=Path, help="a folder holding the netra_nb package to score")
    parser.add_argument("--list", action="store_true", help="print every testcase triaged wrong")
    parser.add_argument("--table", action="store_true",
                        help="print, per fault profile, the categories its testcases got (markdown, for the README)")
    args = parser.parse_args()
    if args.kit:
        sys.path.insert(0, str(args.kit.resolve()))
    sys.path.insert(0, str(HERE.parent))
    from corpus_table import CORPUS, FILES, PROFILES, expected, key  # noqa: E402 - after the path is set

    import netra_nb.triage as triage  # noqa: E402
    print(f"kit: {Path(triage.__file__).parent.parent}")
    right, total, wrong, rows = Counter(), Counter(), [], []
    with tempfile.TemporaryDirectory() as tmp:
        for file in FILES:
            plain = Path(tmp) / file.removesuffix(".gz")
            plain.parent.mkdir(parents=True, exist_ok=True)
            plain.write_bytes(gzip.decompress((CORPUS / file).read_bytes()))
            cases = triage.parse_junit(plain)
            source = "library" if file.startswith("library") else "platform, healthy" if "none" in file \
                else "platform, fault profiles"
            got = Counter()
            for case, record in zip(cases, triage.triage_records(cases, "score")):
                got[(record.status, record.category, case.outcome)] += 1
                want = expected(file, key(case.classname, case.name), case.time_s)
                total[source] += 1
                if (record.status, record.category) == want:
                    right[source] += 1
                else:
                    wrong.append(f"{file} {key(case.classname, case.name)}: got {record.status}/{record.category}, "
                                 f"expected {want[0]}/{want[1]}")
            profile = file.removeprefix("platform/").removesuffix(".xml.gz")
            if profile in PROFILES:
                rows.append(_table_row(profile, PROFILES[profile], got))
    if args.table:
        print("| profile | the kit's checks | the suite's JUnit triages to (testcases; of them passed) |")
        print("|---|---|---|")
        print("\n".join(rows))
    for source in total:
        print(f"{source:26} {right[source]:4} / {total[source]:4} right ({right[source] / total[source]:.0%})")
    print(f"{'all':26} {sum(right.values()):4} / {sum(total.values()):4} right "
          f"({sum(right.values()) / sum(total.values()):.0%})")
    if args.list:
        print("\n".join(wrong))


def _table_row(profile: str, rows: list[dict[str, str]], got: Counter) -> str:
    """One line of the README's table: the profile, what the kit's own checks report for it, and every
    failing category its JUnit triaged to, with how many testcases (and how many of them had passed)."""
    from netra_nb.refserver.faults import FAULTS
    kit = ", ".join(sorted(set(FAULTS[profile].expected.values()))) if profile in FAULTS else "?"
    failing: Counter = Counter()
    passed: Counter = Counter()
    for (status, category, outcome), n in got.items():
        if status in ("fail", "error") and category not in ("fake_fast", "client_error", "unknown"):
            failing[category] += n
            passed[category] += n if outcome == "passed" else 0
    named = {row["category"] for row in rows}
    parts = [f"{'**' + c + '**' if c in named else c} {n}" + (f" ({passed[c]} passed)" if passed[c] else "")
             for c, n in failing.most_common()]
    return f"| `{profile}` | {kit} | {', '.join(parts) or 'nothing: every testcase as in the healthy run'} |"


if __name__ == "__main__":
    main()
