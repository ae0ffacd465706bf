//! The sweep's `report.html`: the frontier — every run's max drawdown against its return, the
//! Pareto front (no other run returns more for less drawdown) drawn through them, the run with
//! the current config marked — and the table of every run, sortable by any column in the page.
//! Self-contained: no script or style is fetched.

use super::report::esc;
use super::sweep::{Axis, Row, Swept};
use anyhow::Context;
use std::fmt::Write;
use std::path::Path;

const W: f64 = 900.0;
const H: f64 = 420.0;
const PAD: f64 = 56.0;
/// The plot's left edge: room for the return ticks and, left of them, the axis title.
const LEFT: f64 = PAD + 20.0;

/// The runs no other run beats: as much return or more for as little drawdown or less, and
/// strictly better in one. In order of drawdown.
pub fn pareto(rows: &[Row]) -> Vec<usize> {
    let beats = |a: &Row, b: &Row| {
        a.return_pct >= b.return_pct
            && a.max_drawdown <= b.max_drawdown
            && (a.return_pct > b.return_pct || a.max_drawdown < b.max_drawdown)
    };
    let mut front: Vec<usize> = (0..rows.len())
        .filter(|&i| !rows.iter().any(|o| beats(o, &rows[i])))
        .collect();
    front.sort_by(|&a, &b| rows[a].max_drawdown.total_cmp(&rows[b].max_drawdown));
    front
}

/// A linear axis over `values` (padded by a tenth of their span) onto `from..to`: the mapping
/// and five evenly spaced tick values.
fn scale(
    values: impl Iterator<Item = f64> + Clone,
    from: f64,
    to: f64,
) -> (impl Fn(f64) -> f64, [f64; 5]) {
    let lo = values.clone().fold(f64::INFINITY, f64::min);
    let hi = values.fold(f64::NEG_INFINITY, f64::max);
    let pad = ((hi - lo) * 0.1).max(0.05);
    let (lo, hi) = (lo - pad, hi + pad);
    let ticks = [0.0, 0.25, 0.5, 0.75, 1.0].map(|k| lo + (hi - lo) * k);
    (move |v| from + (v - lo) / (hi - lo) * (to - from), ticks)
}

fn label(axes: &[Axis], row: &Row) -> String {
    axes.iter()
        .zip(&row.values)
        .map(|(a, v)| format!("{}={v}", a.key))
        .collect::<Vec<_>>()
        .join(" ")
}

fn scatter(axes: &[Axis], rows: &[Row], front: &[usize], current: Option<usize>) -> String {
    let (x, x_ticks) = scale(rows.iter().map(|r| r.max_drawdown * 100.0), LEFT, W - PAD);
    let (y, y_ticks) = scale(rows.iter().map(|r| r.return_pct * 100.0), H - PAD, PAD);
    let mut grid = String::new();
    for t in x_ticks {
        let _ = write!(
            grid,
            "<line x1=\"{0:.1}\" x2=\"{0:.1}\" y1=\"{PAD}\" y2=\"{1}\" stroke=\"#eee\"/>\
             <text x=\"{0:.1}\" y=\"{2}\" class=\"lab\" text-anchor=\"middle\">{t:.2}</text>",
            x(t),
            H - PAD,
            H - PAD + 16.0
        );
    }
    for t in y_ticks {
        let _ = write!(
            grid,
            "<line x1=\"{LEFT}\" x2=\"{0}\" y1=\"{1:.1}\" y2=\"{1:.1}\" stroke=\"#eee\"/>\
             <text x=\"{2}\" y=\"{3:.1}\" class=\"lab\" text-anchor=\"end\">{t:+.2}</text>",
            W - PAD,
            y(t),
            LEFT - 6.0,
            y(t) + 4.0
        );
    }
    let mut o = format!(
        "<svg viewBox=\"0 0 {W} {H}\" role=\"img\" aria-label=\"frontier\">\
         <text x=\"{}\" y=\"{}\" class=\"lab\" text-anchor=\"middle\">max drawdown (%)</text>\
         <text x=\"14\" y=\"{}\" class=\"lab\" transform=\"rotate(-90 14 {})\" text-anchor=\"middle\">return (%)</text>{grid}",
        (LEFT + W - PAD) / 2.0,
        H - 4.0,
        H / 2.0,
        H / 2.0
    );
    let pts: Vec<String> = front
        .iter()
        .map(|&i| {
            let r = &rows[i];
            format!(
                "{:.1},{:.1}",
                x(r.max_drawdown * 100.0),
                y(r.return_pct * 100.0)
            )
        })
        .collect();
    let _ = write!(
        o,
        "<polyline class=\"front\" fill=\"none\" stroke=\"#1d7a35\" stroke-width=\"2\" points=\"{}\"/>",
        pts.join(" ")
    );
    for (i, r) in rows.iter().enumerate() {
        let (cx, cy) = (x(r.max_drawdown * 100.0), y(r.return_pct * 100.0));
        let on_front = front.contains(&i);
        let _ = write!(
            o,
            "<circle class=\"run{}\" data-run=\"{i}\" cx=\"{cx:.1}\" cy=\"{cy:.1}\" r=\"5\" fill=\"{}\"><title>run {i:03} {}: return {:+.2}%, max drawdown {:.2}%</title></circle>",
            if on_front { " pareto" } else { "" },
            if on_front { "#1d7a35" } else { "#8a94a3" },
            esc(&label(axes, r)),
            r.return_pct * 100.0,
            r.max_drawdown * 100.0
        );
        if current == Some(i) {
            let _ = write!(
                o,
                "<circle id=\"current\" cx=\"{cx:.1}\" cy=\"{cy:.1}\" r=\"10\" fill=\"none\" stroke=\"#b03a2e\" stroke-width=\"2\"/>\
                 <text x=\"{:.1}\" y=\"{:.1}\" class=\"lab\">current config</text>",
                cx + 12.0,
                cy - 8.0
            );
        }
    }
    o.push_str("</svg>");
    o
}

fn table(axes: &[Axis], rows: &[Row], front: &[usize], current: Option<usize>) -> String {
    let mut head: Vec<String> = vec!["run".to_owned()];
    head.extend(axes.iter().map(|a| esc(&a.key)));
    head.extend(
        [
            "return %",
            "max drawdown %",
            "return ÷ drawdown",
            "max notional ÷ equity",
            "max margin usage %",
            "liquidations",
            "rotations",
            "rotation hit rate",
            "blocks",
            "on the front",
        ]
        .map(str::to_owned),
    );
    let mut o = String::from("<table id=\"runs\"><thead><tr>");
    for h in &head {
        let _ = write!(o, "<th>{h}</th>");
    }
    o.push_str("</tr></thead><tbody>");
    for (i, r) in rows.iter().enumerate() {
        let mut cells: Vec<String> = vec![format!("{i:03}")];
        cells.extend(r.values.iter().map(|v| esc(v)));
        cells.extend([
            format!("{:.2}", r.return_pct * 100.0),
            format!("{:.2}", r.max_drawdown * 100.0),
            format!("{:.2}", r.return_over_drawdown()),
            format!("{:.2}", r.max_notional_on_equity),
            format!("{:.2}", r.max_margin_usage * 100.0),
            r.liquidations.to_string(),
            r.rotations.to_string(),
            r.rotation_hit_rate
                .map_or("–".to_owned(), |h| format!("{:.0}%", h * 100.0)),
            r.blocks.values().sum::<usize>().to_string(),
            if front.contains(&i) { "yes" } else { "" }.to_owned(),
        ]);
        let class = if current == Some(i) {
            " class=\"current\""
        } else {
            ""
        };
        let _ = write!(o, "<tr{class}>");
        for c in cells {
            let _ = write!(o, "<td>{c}</td>");
        }
        o.push_str("</tr>");
    }
    o.push_str("</tbody></table>");
    o
}

/// Writes the page for `swept` as `report.html` in `dir`; returns its path.
pub fn write(dir: &Path, axes: &[Axis], swept: &Swept) -> anyhow::Result<std::path::PathBuf> {
    let path = dir.join("report.html");
    std::fs::write(&path, render(axes, &swept.rows, swept.current))
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

/// The page. `current` is the run whose config is the one in force, when the grid holds it.
pub fn render(axes: &[Axis], rows: &[Row], current: Option<usize>) -> String {
    let front = pareto(rows);
    let data = serde_json::json!({
        "keys": axes.iter().map(|a| &a.key).collect::<Vec<_>>(),
        "runs": rows.iter().map(|r| serde_json::json!({
            "values": r.values,
            "return": r.return_pct,
            "max_drawdown": r.max_drawdown,
            "liquidations": r.liquidations,
        })).collect::<Vec<_>>(),
        "pareto": front,
        "current": current,
    });
    format!(
        r##"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>quantum-governor sweep: {n} runs</title>
<style>
body{{font:15px/1.45 system-ui,sans-serif;color:#222;max-width:1000px;margin:24px auto;padding:0 16px}}
h1{{font-size:22px}} h2{{font-size:17px;border-bottom:1px solid #ddd}} svg{{width:100%;height:auto}}
.lab{{font-size:12px;fill:#555}} .note{{color:#555;font-size:13px}}
.wrap{{overflow-x:auto}} table{{border-collapse:collapse;font-size:13px}} td,th{{border-bottom:1px solid #eee;padding:3px 6px;text-align:right}}
th{{background:#f7f7f7;cursor:pointer}} tr.current td{{background:#fdf0ee}}
</style></head><body>
<h1>Sweep: {n} runs of {keys}</h1>
<h2>Frontier</h2>
<p class="note">Each run's max drawdown against its return. Green: the Pareto front (no other run returns as much or more for as little drawdown or less). Circled: the current config. Hover a point for its values.</p>
{scatter}
<h2>Runs</h2>
<p class="note">Click a column's header to sort by it (again: the other way).</p>
<div class="wrap">{table}</div>
<script type="application/json" id="data-sweep">{data}</script>
<script>
document.querySelectorAll("#runs th").forEach((th, col) => th.addEventListener("click", () => {{
  const body = document.querySelector("#runs tbody");
  const up = th.dataset.sort !== "up";
  document.querySelectorAll("#runs th").forEach((h) => delete h.dataset.sort);
  th.dataset.sort = up ? "up" : "down";
  const key = (tr) => {{ const t = tr.children[col].textContent; const v = parseFloat(t); return isNaN(v) ? t : v; }};
  [...body.rows].sort((a, b) => {{ const x = key(a), y = key(b); return (x < y ? -1 : x > y ? 1 : 0) * (up ? 1 : -1); }})
    .forEach((tr) => body.appendChild(tr));
}}));
</script>
</body></html>
"##,
        n = rows.len(),
        keys = esc(&axes
            .iter()
            .map(|a| a.key.as_str())
            .collect::<Vec<_>>()
            .join(" × ")),
        scatter = scatter(axes, rows, &front, current),
        table = table(axes, rows, &front, current),
        data = data.to_string().replace("</", "<\\/"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(ret: f64, dd: f64) -> Row {
        Row {
            values: vec![],
            final_equity: 0.0,
            return_pct: ret,
            max_drawdown: dd,
            max_notional_on_equity: 0.0,
            max_margin_usage: 0.0,
            liquidations: 0,
            blocks: Default::default(),
            rotations: 0,
            rotation_hit_rate: None,
        }
    }

    #[test]
    fn the_front_is_the_runs_no_other_run_beats() {
        let rows = [
            row(0.02, 0.01),   // 0: front
            row(0.01, 0.02),   // 1: beaten by 0
            row(0.03, 0.03),   // 2: front (more return for more drawdown)
            row(0.03, 0.04),   // 3: beaten by 2 (same return, more drawdown)
            row(0.005, 0.005), // 4: front (least drawdown)
        ];
        assert_eq!(pareto(&rows), vec![4, 0, 2]);
    }
}
