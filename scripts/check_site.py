"""Open the built docs site in a real browser: follow every internal link, check every image, take screenshots.

    mkdocs build --strict && python scripts/check_site.py [--site site] [--out .ci/artifacts]

Serves ``--site`` on 127.0.0.1 (a free port), drives Debian's headless Chromium (``/usr/bin/chromium``, through
Playwright's Python API: no browser is downloaded) from the front page over every internal link it finds, and fails
(exit 1, one line per problem) on a page that does not load (HTTP status >= 400), a ``#fragment`` without its
target, or an image that does not render (``naturalWidth == 0``). Writes ``front.png`` (the front page) and
``guide.png`` (the aggregators guide) into ``--out``. Exit 3 when Chromium or Playwright is missing, so a caller
can tell "not checked" from "broken". Run by ``tests/test_docs_site.py`` (slow, CI's second step).
"""

from __future__ import annotations

import argparse
import functools
import http.server
import sys
import threading
from pathlib import Path
from urllib.parse import urldefrag, urljoin, urlparse

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run"]  # fmt: skip
GUIDE = "aggregators/"


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:  # noqa: D102 - silence the access log
        pass


def serve(site: Path) -> tuple[http.server.ThreadingHTTPServer, str]:
    """Serve ``site`` on 127.0.0.1 at a free port in a daemon thread; return the server and its base URL."""
    handler = functools.partial(_Quiet, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/"


def check(site: Path, out: Path, user_data_dir: Path, max_pages: int = 200) -> tuple[list[str], int]:
    """Crawl the site; return the problems found and the number of pages visited."""
    from playwright.sync_api import sync_playwright

    server, base = serve(site)
    problems: list[str] = []
    seen: set[str] = set()
    queue = [base]
    fragments: list[tuple[str, str, str]] = []  # (from page, target page, fragment)
    ids: dict[str, set[str]] = {}
    out.mkdir(parents=True, exist_ok=True)
    try:
        with sync_playwright() as pw:
            ctx = pw.chromium.launch_persistent_context(
                str(user_data_dir), executable_path=CHROMIUM, headless=True, args=FLAGS,
                viewport={"width": 1280, "height": 900},
            )  # fmt: skip
            page = ctx.new_page()
            while queue and len(seen) < max_pages:
                url = queue.pop(0)
                if url in seen:
                    continue
                seen.add(url)
                resp = page.goto(url, wait_until="load")
                if resp is None or resp.status >= 400:
                    problems.append(f"{url}: HTTP {None if resp is None else resp.status}")
                    continue
                broken = page.eval_on_selector_all(
                    "img", "els => els.filter(e => !(e.complete && e.naturalWidth > 0)).map(e => e.src)"
                )
                problems += [f"{url}: image does not load: {src}" for src in broken]
                ids[url] = set(page.eval_on_selector_all("[id]", "els => els.map(e => e.id)"))
                for href in page.eval_on_selector_all("a[href]", "els => els.map(e => e.getAttribute('href'))"):
                    target = urljoin(url, href)
                    if not target.startswith(base):
                        continue
                    path, frag = urldefrag(target)
                    if urlparse(path).path.endswith((".png", ".svg", ".jpg", ".txt", ".xml", ".json", ".gz")):
                        continue
                    if frag:
                        fragments.append((url, path, frag))
                    if path not in seen:
                        queue.append(path)
                if url == base:
                    page.screenshot(path=str(out / "front.png"), full_page=False)
                if url == base + GUIDE:
                    page.screenshot(path=str(out / "guide.png"), full_page=False)
            ctx.close()
    finally:
        server.shutdown()
    for src, path, frag in fragments:
        if path in ids and frag not in ids[path]:
            problems.append(f"{src}: link to {path}#{frag}: no element with that id")
    for name in ("front.png", "guide.png"):
        if not (out / name).exists():
            problems.append(f"no screenshot {name} (page not reached)")
    return problems, len(seen)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--site", type=Path, default=Path("site"), help="the built site (mkdocs build)")
    ap.add_argument("--out", type=Path, default=Path(".ci/artifacts"), help="where the screenshots go")
    args = ap.parse_args(argv)
    if not (args.site / "index.html").exists():
        print(f"check_site: error: no built site at {args.site} (run mkdocs build --strict first)", file=sys.stderr)
        return 2
    try:
        import playwright  # noqa: F401
    except ImportError:
        print("check_site: not checked: Playwright is not installed (pip install -e '.[docs]')", file=sys.stderr)
        return 3
    if not Path(CHROMIUM).exists():
        print(f"check_site: not checked: no {CHROMIUM} (apt-get install chromium)", file=sys.stderr)
        return 3
    import tempfile

    with tempfile.TemporaryDirectory(prefix="mtrl-chromium-") as profile:
        problems, n = check(args.site, args.out, Path(profile))
    for p in problems:
        print(f"check_site: {p}", file=sys.stderr)
    print(f"check_site: {n} pages, {len(problems)} problem(s); screenshots in {args.out}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
