"""
Open an audit's ``report.html`` in a real browser (headless Chromium) and fail on what a reader would see broken:
an image that does not load, a table wider than the window, a console or script error. Optionally save a
screenshot. Exit 0 when the page is clean, 1 with one line per problem otherwise, 2 when Chromium is missing.

    python evaluations/report_check.py audit --screenshot audit/report.png     # make report-check REPORT=audit

The page is opened from a copy with a probe script first in its ``<head>`` (a ``<base>`` points back at the report
folder, so images load from where they are): it records ``console.error`` calls, script errors and failed loads,
then after ``load`` checks every image's decoded size and every table's right edge against the window, and writes
its findings into the DOM, which ``--dump-dom`` prints.
"""

from __future__ import annotations

import argparse
import html
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

BROWSERS = ("chromium", "chromium-browser", "google-chrome")
# A clean, private, offline profile: no sync, updates, first-run pages or network chatter.
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--hide-scrollbars",
)
PROBE = """<script>
window.__problems = [];
(function () {
  var original = console.error;
  console.error = function () {
    window.__problems.push("console error: " + Array.prototype.join.call(arguments, " "));
    return original.apply(console, arguments);
  };
  window.addEventListener("error", function (e) {
    var t = e.target;
    if (t && t !== window && (t.src || t.href)) { window.__problems.push("failed to load: " + (t.src || t.href)); }
    else { window.__problems.push("script error: " + e.message); }
  }, true);
  window.addEventListener("load", function () {
    var problems = window.__problems.slice(), width = document.documentElement.clientWidth;
    Array.prototype.forEach.call(document.images, function (img) {
      if (!img.complete || img.naturalWidth === 0) { problems.push("broken image: " + img.getAttribute("src")); }
    });
    Array.prototype.forEach.call(document.querySelectorAll("table"), function (t, i) {
      var r = t.getBoundingClientRect();
      if (r.right > width + 1 || r.left < -1) {
        var h = t.previousElementSibling;
        while (h && h.tagName !== "H2") { h = h.previousElementSibling; }
        h = h ? h.textContent.slice(0, 60) : "";
        problems.push("table " + (i + 1) + " (" + h + ") overflows: right edge " + Math.round(r.right) +
                      " px, window " + width + " px");
      }
    });
    var out = document.createElement("pre");
    out.id = "__report_check";
    out.textContent = JSON.stringify({problems: problems, images: document.images.length,
      tables: document.querySelectorAll("table").length, height: document.documentElement.scrollHeight});
    document.body.appendChild(out);
  });
})();
</script>"""


def find_browser() -> str | None:
    for name in BROWSERS:
        path = shutil.which(name)
        if path:
            return path
    return None


def _run(browser: str, profile: Path, width: int, height: int, *args: str, timeout: float = 120) -> str:
    cmd = [
        browser,
        *FLAGS,
        f"--user-data-dir={profile}",
        f"--window-size={width},{height}",
        "--virtual-time-budget=10000",
        *args,
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{Path(browser).name} exited {done.returncode}: {done.stderr.strip()[-500:]}")
    return done.stdout


def check_report(report: Path, width: int = 1280, screenshot: Path | None = None, browser: str | None = None) -> dict:
    """Open ``report`` (``report.html`` or its folder) and return ``{"problems": [...], "images": n, "tables": n,
    "height": px}``; with ``screenshot``, also save the whole page as a PNG there."""
    report = Path(report)
    page = (report / "report.html" if report.is_dir() else report).resolve()
    if not page.is_file():
        raise FileNotFoundError(f"No report at {page}: run `art-ssl audit --out {report}` first.")
    browser = browser or find_browser()
    if browser is None:
        raise FileNotFoundError("Chromium not found: apt-get install chromium (make report-check does it).")
    with tempfile.TemporaryDirectory(prefix="report_check_") as tmp:
        tmp = Path(tmp)
        source = page.read_text()
        head = f"<base href='{page.parent.as_uri()}/'>{PROBE}"
        probed = re.sub(r"<head>", "<head>" + head, source, count=1) if "<head>" in source else head + source
        copy = tmp / "probed.html"
        copy.write_text(probed)
        dom = _run(browser, tmp / "profile", width, 900, "--dump-dom", copy.as_uri())
        found = re.search(r'<pre id="__report_check">(.*?)</pre>', dom, flags=re.S)
        if found is None:
            return {
                "problems": ["the page never finished loading (no probe result)"],
                "images": 0,
                "tables": 0,
                "height": 0,
            }
        result = json.loads(html.unescape(found.group(1)))
        if screenshot is not None:
            screenshot = Path(screenshot).resolve()
            screenshot.parent.mkdir(parents=True, exist_ok=True)
            height = max(600, min(int(result["height"]) + 20, 16000))
            _run(browser, tmp / "profile2", width, height, f"--screenshot={screenshot}", page.as_uri())
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument("report", nargs="?", default="audit", help="an audit folder or its report.html")
    parser.add_argument("--screenshot", default=None, help="save the whole page as this PNG")
    parser.add_argument("--width", type=int, default=1280, help="window width in CSS pixels")
    args = parser.parse_args(argv)
    try:
        result = check_report(Path(args.report), args.width, args.screenshot)
    except FileNotFoundError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    for problem in result["problems"]:
        print(f"report-check: {problem}", file=sys.stderr)
    status = "FAILED" if result["problems"] else "ok"
    print(
        f"report-check {status}: {result['images']} images, {result['tables']} tables, page {result['height']} px "
        f"high at {args.width} px" + (f"; screenshot {args.screenshot}" if args.screenshot else "")
    )
    return 1 if result["problems"] else 0


if __name__ == "__main__":
    sys.exit(main())
