#!/usr/bin/env python3
"""Prints the Markdown table of docs/bad-inputs.md from a catalogue run's report.

    SMOL_CATALOGUE_REPORT=/tmp/catalogue.json build/tests/catalogue/catalogue_tests
    python3 tests/catalogue/make_table.py /tmp/catalogue.json > /tmp/table.md

Temporary directories and the checkout's path are cut from the messages, so the table shows
the file names the user would see relative to where they ran the command.
"""
import json
import re
import sys


def main() -> None:
    report = json.load(open(sys.argv[1]))
    cases = report["cases"]
    worst = max(cases, key=lambda c: c["rss_kib"])
    print(f"Measured: {len(cases)} cases; `smolengine --version` alone peaks at "
          f"{report['baseline_kib'] / 1024:.0f} MiB; the worst case, `{worst['name']}`, at "
          f"{worst['rss_kib'] / 1024:.0f} MiB.\n")
    area = None
    for c in cases:
        if c["area"] != area:
            area = c["area"]
            print(f"\n### {area}\n")
            print("| case | input | message | peak RSS |")
            print("|---|---|---|---|")
        message = re.sub(r"/tmp/smol_catalogue_\d+_[A-Za-z0-9_]+/work/", "", c["error"])
        message = re.sub(r"/[^ ]*/configs/", "configs/", message)
        message = message.replace("|", "\\|")
        if len(message) > 300:
            message = message[:300] + " …"
        text = c["input"].replace("|", "\\|")
        above = (c["rss_kib"] - report["baseline_kib"]) / 1024
        print(f"| `{c['name']}` | {text} | `{message}` | {c['rss_kib'] / 1024:.0f} MiB "
              f"(+{max(above, 0):.0f}) |")


if __name__ == "__main__":
    main()
