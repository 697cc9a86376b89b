"""The static HTML report of a sweep: the Pareto plots (embedded PNGs), a sortable table of every point
(a few lines of inline JavaScript, nothing fetched), and the spec.

Click a column header to sort (again to reverse). ``report.html#sort=COLUMN`` or ``#sort=COLUMN:desc``
sorts on load by clicking that header, so a headless browser can check the sorting; the page writes
how many plots decoded into ``#plot-status`` once loaded.
"""

from __future__ import annotations

import base64
import html
import json
import math
from pathlib import Path

__all__ = ["write_report"]

#: Columns shown first (when present); every other column follows.
_FIRST = ("index", "model", "status", "tokens_per_s", "energy_per_token_j", "perplexity", "chips", "cores",
          "ttft_s", "power_w", "yosys_lut_total")
_HIDE = ("id", "worker")

_JS = r"""
(function () {
  function cellValue(td) {
    var v = td.getAttribute('data-v');
    if (v === null || v === '') return null;
    var n = Number(v);
    return isNaN(n) ? v.toLowerCase() : n;
  }
  function sortBy(th) {
    var table = document.getElementById('points');
    var idx = Array.prototype.indexOf.call(th.parentNode.children, th);
    var desc = table.getAttribute('data-sorted') === th.getAttribute('data-col') + ':asc';
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = cellValue(a.cells[idx]), y = cellValue(b.cells[idx]);
      if (x === null && y === null) return 0;
      if (x === null) return 1;            /* empty cells last either way */
      if (y === null) return -1;
      var c = (typeof x === typeof y) ? (x < y ? -1 : x > y ? 1 : 0) : (typeof x === 'number' ? -1 : 1);
      return desc ? -c : c;
    });
    rows.forEach(function (r) { body.appendChild(r); });
    table.setAttribute('data-sorted', th.getAttribute('data-col') + (desc ? ':desc' : ':asc'));
    Array.prototype.forEach.call(th.parentNode.children, function (h) { h.className = ''; });
    th.className = desc ? 'desc' : 'asc';
  }
  window.addEventListener('load', function () {
    var ths = document.querySelectorAll('#points thead th');
    Array.prototype.forEach.call(ths, function (th) { th.addEventListener('click', function () { sortBy(th); }); });
    var imgs = document.querySelectorAll('img.plot'), ok = 0;
    Array.prototype.forEach.call(imgs, function (im) { if (im.complete && im.naturalWidth > 0) ok++; });
    var st = document.getElementById('plot-status');
    st.textContent = 'plots loaded: ' + ok + '/' + imgs.length;
    st.setAttribute('data-loaded', ok);
    var m = /#sort=([^:&]+)(:desc)?/.exec(location.hash);
    if (m) {
      var th = document.querySelector('#points thead th[data-col="' + decodeURIComponent(m[1]) + '"]');
      if (th) { th.click(); if (m[2]) th.click(); }
    }
  });
})();
"""

_CSS = """
body { font-family: sans-serif; margin: 1.5em; color: #222; }
table { border-collapse: collapse; font-size: 12px; }
th, td { border: 1px solid #ccc; padding: 2px 6px; text-align: right; white-space: nowrap; }
th { background: #eee; cursor: pointer; position: sticky; top: 0; }
th.asc::after { content: ' \\25B2'; } th.desc::after { content: ' \\25BC'; }
tr.failed td { background: #fee; }
.plots img { max-width: 48%; margin: 0.5%; border: 1px solid #ddd; }
pre { background: #f6f6f6; padding: 1em; overflow-x: auto; }
.wrap { max-height: 70vh; overflow: auto; }
"""


def _fmt(v) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        if not math.isfinite(v):
            return str(v)
        return f"{v:.4g}"
    if isinstance(v, (list, dict)):
        return json.dumps(v)
    return str(v)


def _data(v) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return str(int(v))
    if isinstance(v, (int, float)):
        return repr(v)
    return str(v)


def write_report(path: str | Path, spec, rows: list[dict], plots: list[Path], meta: dict, summary: dict) -> Path:
    """Write the report to ``path`` (one self-contained HTML file)."""
    cols = [c for c in _FIRST if any(c in r for r in rows)]
    for r in rows:
        cols += [k for k in r if k not in cols and k not in _HIDE]
    imgs = []
    for p in plots:
        b64 = base64.b64encode(Path(p).read_bytes()).decode()
        imgs.append(f'<img class="plot" alt="{html.escape(Path(p).stem)}" title="{html.escape(Path(p).stem)}" '
                    f'src="data:image/png;base64,{b64}">')
    head = "".join(f'<th data-col="{html.escape(c)}">{html.escape(c)}</th>' for c in cols)
    body = []
    for r in rows:
        cls = ' class="failed"' if r.get("status") != "ok" else ""
        cells = "".join(f'<td data-v="{html.escape(_data(r.get(c)))}">{html.escape(_fmt(r.get(c)))}</td>' for c in cols)
        body.append(f"<tr{cls}>{cells}</tr>")
    facts = "".join(f"<li>{html.escape(str(k))}: {html.escape(str(v))}</li>" for k, v in summary.items())
    doc = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Sweep {html.escape(spec.name)}</title>
<style>{_CSS}</style></head><body>
<h1>Sweep {html.escape(spec.name)}</h1>
<p>{html.escape(spec.description)}</p>
<ul>{facts}<li>spec hash: {html.escape(meta.get('spec_hash', ''))}</li>
<li>project version: {html.escape(meta.get('project_version', ''))}</li></ul>
<h2>Pareto fronts</h2>
<p id="plot-status" data-loaded="0">plots loading</p>
<div class="plots">{''.join(imgs)}</div>
<h2>Points ({len(rows)})</h2>
<p>Click a column header to sort it.</p>
<div class="wrap"><table id="points" data-sorted=""><thead><tr>{head}</tr></thead>
<tbody>{''.join(body)}</tbody></table></div>
<h2>Spec</h2>
<pre>{html.escape(spec.text)}</pre>
<script>{_JS}</script>
</body></html>
"""
    path = Path(path)
    path.write_text(doc, encoding="utf-8")
    return path
