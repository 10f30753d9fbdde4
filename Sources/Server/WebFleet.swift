import ReconcilerStatus
import SystemSupport

/// The fleet's pages: hosts × apps, and how far a release has reached.
extension WebPage {
    /// Each host of `hosts:` with each app it runs: version, health, the
    /// stage it waits for, and whether the host is stale.
    static func fleet(_ report: FleetReport, viewer: Viewer) -> String {
        var main = "<h1>Fleet</h1>\n"
        guard !report.hosts.isEmpty else {
            main += "<p>rewind.yaml has no <code>hosts:</code>: one host runs every app.</p>\n"
            return document(title: "Fleet", live: "fleet", viewer: viewer, main: main)
        }
        let apps = Set(report.hosts.flatMap { $0.apps.map(\.app) }).sorted()
        main += "<p class=\"sub\">Each host as it last published under <code>refs/rewind/hosts/</code>; a host silent for three of its status intervals is stale.</p>\n"
        main += "<div class=\"table-wrap\"><table class=\"fleet\">\n<caption class=\"visually-hidden\">Hosts and the apps they run</caption>\n"
        main += "<thead><tr><th scope=\"col\">Host</th><th scope=\"col\">State</th><th scope=\"col\">Written</th><th scope=\"col\">Last sync</th>"
            + apps.map { "<th scope=\"col\"><a href=\"/apps/\(u($0))\">\(e($0))</a></th>" }.joined() + "</tr></thead>\n<tbody>\n"
        for host in report.hosts {
            let state = host.writtenAt == nil ? "never reported" : host.stale ? "STALE" : "fresh"
            main += "<tr id=\"host-\(e(host.name))\" data-host=\"\(e(host.name))\" data-state=\"\(e(state))\"><th scope=\"row\">\(e(host.name))</th>"
            main += "<td>\(host.stale ? "<strong class=\"error-text\">\(e(state))</strong>" : e(state))</td><td>\(time(host.writtenAt))</td><td>\(time(host.lastSync))</td>"
            for app in apps {
                guard let running = host.apps.first(where: { $0.app == app }) else {
                    main += "<td>-</td>"
                    continue
                }
                main += "<td data-app=\"\(e(app))\" data-version=\"\(e(running.version ?? ""))\">\(e(running.version ?? "-")) \(health(running.health))"
                if let stage = running.stage { main += "<br><span class=\"hint\">\(stage.halted ? "HALTED: " : "waits: ")\(e(stage.reason))</span>" }
                if let error = running.lastError { main += "<br><span class=\"error-text\">\(e(error))</span>" }
                main += "</td>"
            }
            main += "</tr>\n"
        }
        main += "</tbody></table></div>\n"
        return document(title: "Fleet", live: "fleet", viewer: viewer, main: main)
    }

    /// A release page's "Reach": for each app it changes, which of its hosts run it.
    static func reach(_ reach: [ReleaseReach]) -> String {
        var out = "<h2>Reach</h2>\n"
        for app in reach {
            out += "<section class=\"reach\" aria-label=\"Reach of \(e(app.app))\"><h3>\(e(app.app)): \(app.reached) of \(app.hosts.count) hosts run it healthy</h3><ul>"
            for host in app.hosts {
                let what = host.state == "runs" ? "runs it " + health(host.health ?? "unknown") : e(host.state)
                out += "<li data-host=\"\(e(host.host))\" data-state=\"\(e(host.state))\"><strong>\(e(host.host))</strong>: \(what)"
                out += host.detail.map { " <span class=\"hint\">\(e($0))</span>" } ?? ""
                out += host.stale ? " <span class=\"error-text\">(stale)</span>" : ""
                out += "</li>"
            }
            out += "</ul></section>\n"
        }
        return out
    }
}
