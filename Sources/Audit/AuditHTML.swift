import GitKit
import Rollback
import SystemSupport

/// Text made safe for HTML content and attribute values.
func html(_ text: String) -> String { HTML.escape(text) }

/// Inline SVG charts: no script, no external asset.
enum SVGChart {
    static let width = 720.0, height = 220.0, left = 48.0, bottom = 28.0, top = 12.0, right = 12.0

    static func number(_ v: Double) -> String { decimal(v, places: 1) }

    /// Axes with `ticks` labels on the y axis (value → label).
    static func frame(_ name: String, title: String, yMax: Double, yLabel: (Double) -> String, xLabels: [String], body: String) -> String {
        let plotHeight = height - bottom - top
        var out = "<svg class=\"chart\" data-chart=\"\(name)\" role=\"img\" aria-label=\"\(html(title))\" viewBox=\"0 0 \(Int(width)) \(Int(height))\" width=\"100%\" xmlns=\"http://www.w3.org/2000/svg\">"
        out += "<title>\(html(title))</title>"
        for i in 0...4 {
            let y = top + plotHeight - plotHeight * Double(i) / 4
            out += "<line class=\"grid\" x1=\"\(number(left))\" y1=\"\(number(y))\" x2=\"\(number(width - right))\" y2=\"\(number(y))\"/>"
            out += "<text class=\"axis\" x=\"\(number(left - 6))\" y=\"\(number(y + 4))\" text-anchor=\"end\">\(html(yLabel(yMax * Double(i) / 4)))</text>"
        }
        let step = (width - left - right) / Double(max(1, xLabels.count))
        let every = max(1, xLabels.count / 8)
        for (i, label) in xLabels.enumerated() where i % every == 0 {
            out += "<text class=\"axis\" x=\"\(number(left + step * (Double(i) + 0.5)))\" y=\"\(number(height - 8))\" text-anchor=\"middle\">\(html(label))</text>"
        }
        if xLabels.isEmpty { out += "<text class=\"axis\" x=\"\(number(width / 2))\" y=\"\(number(height / 2))\" text-anchor=\"middle\">no data in this range</text>" }
        return out + body + "</svg>"
    }

    /// Bars per x position, several series side by side.
    static func bars(_ name: String, title: String, labels: [String], series: [(name: String, css: String, values: [Double])]) -> String {
        let yMax = niceMax(series.flatMap(\.values).max() ?? 0)
        let plotHeight = height - bottom - top
        let step = (width - left - right) / Double(max(1, labels.count))
        let barWidth = step * 0.8 / Double(max(1, series.count))
        var body = ""
        for (s, serie) in series.enumerated() {
            for (i, value) in serie.values.enumerated() where value > 0 {
                let h = plotHeight * value / yMax
                let x = left + step * Double(i) + step * 0.1 + barWidth * Double(s)
                body += "<rect class=\"mark \(serie.css)\" x=\"\(number(x))\" y=\"\(number(top + plotHeight - h))\" width=\"\(number(barWidth))\" height=\"\(number(h))\">"
                    + "<title>\(html(labels[i])): \(Int(value)) \(html(serie.name))</title></rect>"
            }
        }
        return frame(name, title: title, yMax: yMax, yLabel: { "\(Int($0.rounded()))" }, xLabels: labels, body: body)
    }

    /// A line with a point per x position that has a value.
    static func line(_ name: String, title: String, labels: [String], values: [Double?], css: String, yLabel: @escaping (Double) -> String, describe: (Double) -> String) -> String {
        let yMax = niceMax(values.compactMap { $0 }.max() ?? 0)
        let plotHeight = height - bottom - top
        let step = (width - left - right) / Double(max(1, labels.count))
        var points: [(Double, Double, Int)] = []
        for (i, value) in values.enumerated() {
            guard let value else { continue }
            points.append((left + step * (Double(i) + 0.5), top + plotHeight - plotHeight * value / yMax, i))
        }
        var body = ""
        if points.count > 1 {
            body += "<path class=\"mark line \(css)\" d=\"" + points.enumerated().map { "\($0.offset == 0 ? "M" : "L")\(number($0.element.0)) \(number($0.element.1))" }.joined(separator: " ") + "\"/>"
        }
        for (x, y, i) in points {
            body += "<circle class=\"mark \(css)\" cx=\"\(number(x))\" cy=\"\(number(y))\" r=\"4\"><title>\(html(labels[i])): \(html(describe(values[i] ?? 0)))</title></circle>"
        }
        return frame(name, title: title, yMax: yMax, yLabel: yLabel, xLabels: labels, body: body)
    }

    /// Horizontal bars, one per app: deploys, failed ones overlaid.
    static func perApp(_ name: String, title: String, rows: [(app: String, deploys: Int, failed: Int)]) -> String {
        let rowHeight = 22.0
        let h = top + rowHeight * Double(max(1, rows.count)) + bottom
        let labelWidth = 120.0
        let maxValue = niceMax(Double(rows.map(\.deploys).max() ?? 0))
        let plotWidth = width - labelWidth - right - 60
        var out = "<svg class=\"chart\" data-chart=\"\(name)\" role=\"img\" aria-label=\"\(html(title))\" viewBox=\"0 0 \(Int(width)) \(Int(h))\" width=\"100%\" xmlns=\"http://www.w3.org/2000/svg\">"
        out += "<title>\(html(title))</title>"
        if rows.isEmpty { out += "<text class=\"axis\" x=\"\(number(width / 2))\" y=\"\(number(h / 2))\" text-anchor=\"middle\">no apps</text>" }
        for (i, row) in rows.enumerated() {
            let y = top + rowHeight * Double(i)
            out += "<text class=\"axis\" x=\"\(number(labelWidth - 6))\" y=\"\(number(y + 15))\" text-anchor=\"end\">\(html(row.app))</text>"
            let w = plotWidth * Double(row.deploys) / maxValue
            let f = plotWidth * Double(row.failed) / maxValue
            out += "<rect class=\"mark deploys\" x=\"\(number(labelWidth))\" y=\"\(number(y + 3))\" width=\"\(number(max(w, 1)))\" height=\"16\"><title>\(html(row.app)): \(row.deploys) deploys</title></rect>"
            if row.failed > 0 {
                out += "<rect class=\"mark failed\" x=\"\(number(labelWidth))\" y=\"\(number(y + 3))\" width=\"\(number(f))\" height=\"16\"><title>\(html(row.app)): \(row.failed) failed</title></rect>"
            }
            out += "<text class=\"axis\" x=\"\(number(labelWidth + max(w, 1) + 6))\" y=\"\(number(y + 15))\">\(row.deploys) (\(row.failed) failed)</text>"
        }
        return out + "</svg>"
    }

    /// A round upper bound for an axis: 1, 2 or 5 times a power of ten.
    static func niceMax(_ value: Double) -> Double {
        guard value > 0 else { return 1 }
        var power = 1.0
        while power * 10 <= value { power *= 10 }
        while power > value { power /= 10 }
        for factor in [1.0, 2.0, 5.0, 10.0] where power * factor >= value { return power * factor }
        return power * 10
    }
}

extension AuditReport {
    /// One self-contained page: charts first, then the tables. No script
    /// and no external asset, so it reads offline and in a mail archive.
    public var html: String {
        let out = """
        <!DOCTYPE html>
        <html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
        <title>Rewind audit: \(Audit.html(branch))</title>
        <style>
        body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:2rem auto;max-width:1100px;padding:0 1rem;color:#1f2328;background:#fff}
        \(Self.css)</style></head><body>

        """
        return out + htmlBody(link: nil) + "</body></html>\n"
    }

    /// The charts and tables of `rewind audit` (for the web UI's audit
    /// page too). They need `css`. With `link`, each rollback's commit
    /// links to the URL it returns.
    public func htmlBody(link: ((OID) -> String)?) -> String {
        let labels = weeks.map { String(Clock.iso8601UTC(milliseconds: $0.start).prefix(10)) }
        let charts = [
            SVGChart.bars("deploys-per-week", title: "Deploys and failed deploy releases per week", labels: labels, series: [
                ("deploys", "deploys", weeks.map { Double($0.metrics.deploys) }),
                ("failed", "failed", weeks.map { Double($0.metrics.failedReleases) }),
            ]),
            SVGChart.line("change-fail-rate", title: "Change fail rate per week", labels: labels, values: weeks.map { $0.metrics.changeFailRate.map { $0 * 100 } },
                          css: "rate", yLabel: { "\(Int($0.rounded()))%" }, describe: { "\(decimal($0, places: 1))%" }),
            SVGChart.line("recovery-time", title: "Failed deployment recovery time per week (median, minutes)", labels: labels,
                          values: weeks.map { $0.metrics.recoveryTime.median.map { Double($0) / 60_000 } },
                          css: "recovery", yLabel: { "\(decimal($0, places: 1))m" }, describe: { humanDuration(Int64($0 * 60_000)) }),
            SVGChart.perApp("per-app", title: "Deploys per app (failed deploy releases in red)", rows: perApp.map { ($0.app, $0.metrics.deploys, $0.metrics.failedReleases) }),
        ]
        var out = """
        <h1>Rewind audit: \(Audit.html(branch))</h1>
        <p>\(Audit.html(Clock.iso8601UTC(milliseconds: query.since))) to \(Audit.html(Clock.iso8601UTC(milliseconds: query.until))), apps \(Audit.html(apps.joined(separator: ", "))), tip <code>\(tip.short)</code>.
        Computed from git alone: commits, trailers and notes under <code>\(ReleaseNote.notesRef)</code>.</p>
        <div class="charts">

        """
        let captions = ["Deploys and failures per week", "Change fail rate", "Recovery time", "Per app"]
        for (caption, chart) in zip(captions, charts) { out += "<figure><figcaption>\(caption)</figcaption>\(chart)</figure>\n" }
        out += "</div>\n<h2>DORA metrics</h2>\n" + Self.htmlMetrics([("all apps", overall)] + perApp.map { ($0.app, $0.metrics) })
        out += "<h2>By week (all apps)</h2>\n<table><tr><th>week of</th><th>deploys</th><th>failed</th><th>change fail rate</th><th>recovery (median)</th><th>rework rate</th></tr>\n"
        for (label, w) in zip(labels, weeks) {
            let m = w.metrics
            out += "<tr><td>\(label)</td><td>\(m.deploys)</td><td>\(m.failedReleases)</td><td>\(percent(m.changeFailRate))</td><td>\(humanDuration(m.recoveryTime.median))</td><td>\(percent(m.reworkRate))</td></tr>\n"
        }
        out += "</table>\n<h2>Rollback metrics</h2>\n<table>\n"
        let r = rollbackMetrics
        for (name, value) in [("rollbacks", "\(r.attempted)"), ("rollback success rate (verified / attempted)", "\(percent(r.successRate)) (\(r.verified)/\(r.attempted))"),
                              ("automation coverage (automatic / all)", "\(percent(r.automationCoverage)) (\(r.automatic)/\(r.attempted))"),
                              ("rollbacks per release", decimal(r.rollbacksPerRelease)),
                              ("data-loss guards hit", "\(r.dataLossGuardsHit) (migration \(r.guardsHit["migration"] ?? 0), artifact \(r.guardsHit["artifact"] ?? 0))")] {
            out += "<tr><th>\(name)</th><td>\(value)</td></tr>\n"
        }
        out += "</table>\n<h2>Rollback history</h2>\n"
        if rollbacks.isEmpty {
            out += "<p>No rollbacks in this range.</p>\n"
        } else {
            out += "<table><tr><th>time</th><th>commit</th><th>apps</th><th>from → to</th><th>kind</th><th>trigger</th><th>reason</th><th>author</th><th>detect</th><th>decide</th><th>recover</th><th>outcome</th></tr>\n"
            for row in rollbacks {
                let trigger = row.triggerText
                out += "<tr><td>\(Clock.iso8601UTC(milliseconds: row.time))</td><td>\(link.map { "<a href=\"\(Audit.html($0(row.commit)))\"><code>\(row.commit.short)</code></a>" } ?? "<code>\(row.commit.short)</code>")</td><td>\(Audit.html(row.apps.map(\.app).joined(separator: ", ")))</td>"
                    + "<td>\(Audit.html(row.apps.map { "\($0.from ?? "-") → \($0.to ?? "-")" }.joined(separator: ", ")))</td><td>\(row.kind)</td><td>\(Audit.html(trigger))</td>"
                    + "<td>\(Audit.html(row.reason ?? ""))\(row.forced.isEmpty ? "" : "<br><strong>forced:</strong> " + Audit.html(row.forced.joined(separator: "; ")))</td>"
                    + "<td>\(Audit.html(row.author))</td><td>\(humanDuration(row.detectMilliseconds))</td><td>\(humanDuration(row.decisionMilliseconds))</td>"
                    + "<td>\(humanDuration(row.recoveryMilliseconds))</td><td class=\"\(row.outcome)\">\(row.outcome)</td></tr>\n"
            }
            out += "</table>\n"
        }
        if !overrides.isEmpty {
            out += "<h2>Freeze overrides</h2>\n<table><tr><th>time</th><th>commit</th><th>apps</th><th>summary</th><th>author</th></tr>\n"
            for o in overrides {
                out += "<tr><td>\(Clock.iso8601UTC(milliseconds: o.time))</td><td><code>\(o.commit.short)</code></td><td>\(Audit.html(o.apps.joined(separator: ", ")))</td>"
                    + "<td>\(Audit.html(o.summary))</td><td>\(Audit.html(o.author))</td></tr>\n"
            }
            out += "</table>\n"
        }
        if !escalations.isEmpty {
            out += "<h2>Escalations</h2>\n<table><tr><th>time</th><th>app</th><th>release</th><th>reason</th></tr>\n"
            for e in escalations {
                out += "<tr><td>\(Clock.iso8601UTC(milliseconds: e.time))</td><td>\(Audit.html(e.app))</td><td><code>\(e.release.short)</code></td><td>\(Audit.html(e.reason))</td></tr>\n"
            }
            out += "</table>\n"
        }
        out += "<h2>Definitions</h2>\n<dl>\n"
        for (name, text) in MetricDefinitions.named {
            out += "<dt><strong>\(name)</strong></dt><dd>\(Audit.html(text))</dd>\n"
        }
        out += "</dl>\n"
        if !warnings.isEmpty { out += "<h2>Warnings</h2>\n<ul>\n" + warnings.map { "<li class=\"warn\">\(Audit.html($0))</li>\n" }.joined() + "</ul>\n" }
        return out
    }

    /// The style of `htmlBody`.
    public static let css = """
        h1{font-size:1.5rem}h2{font-size:1.2rem;margin-top:2rem;border-bottom:1px solid #d0d7de;padding-bottom:.2rem}
        table{border-collapse:collapse;width:100%;margin:.5rem 0}th,td{border:1px solid #d0d7de;padding:.25rem .5rem;text-align:left;vertical-align:top}
        th{background:#f6f8fa}code{font-family:ui-monospace,monospace;font-size:90%}.charts{display:grid;grid-template-columns:1fr 1fr;gap:1rem}
        figure{margin:0;border:1px solid #d0d7de;border-radius:6px;padding:.5rem}figcaption{font-weight:600;margin-bottom:.25rem}
        .grid{stroke:#eaeef2}.axis{font-size:11px;fill:#57606a}.deploys{fill:#0969da}.failed{fill:#cf222e}
        .rate{fill:#bf8700;stroke:#bf8700}.recovery{fill:#8250df;stroke:#8250df}path.line{fill:none;stroke-width:2}
        .verified{color:#1a7f37}.escalated{color:#cf222e;font-weight:600}.unknown{color:#57606a}.warn{color:#9a6700}
        @media print{.charts{grid-template-columns:1fr}}
        """

    static func htmlMetrics(_ rows: [(String, DoraMetrics)]) -> String {
        var out = "<table><tr><th></th><th>deploys</th><th>per week</th><th>lead time (median / p90)</th><th>change fail rate</th><th>recovery time (median / p90)</th><th>rework rate</th></tr>\n"
        for (name, m) in rows {
            out += "<tr><th>\(Audit.html(name))</th><td>\(m.deploys)</td><td>\(decimal(m.deploysPerWeek, places: 1))</td><td>\(humanDuration(m.leadTime.median)) / \(humanDuration(m.leadTime.p90))</td>"
                + "<td>\(percent(m.changeFailRate)) (\(m.failedReleases)/\(m.deployReleases))</td><td>\(humanDuration(m.recoveryTime.median)) / \(humanDuration(m.recoveryTime.p90))"
                + (m.unrecovered > 0 ? " (\(m.unrecovered) unrecovered)" : "") + "</td><td>\(percent(m.reworkRate))</td></tr>\n"
        }
        return out + "</table>\n"
    }
}
