import Audit
import GitKit
import ReconcilerStatus
import Rollback
import SystemSupport

/// The web UI's pages, rendered on the server from the same values as the
/// API. Every text from git, notes or the state directory goes through
/// `HTML.escape`. The pages work without script; /ui/ui.js adds live
/// updates (Server-Sent Events) on top.
enum WebPage {
    /// Who is looking: their name and the CSRF token their forms carry
    /// (nil: public read, no session).
    struct Viewer: Sendable {
        let name: String?
        let csrf: String?
        /// Nil: public read, no session.
        var role: Role? = nil
        var breakGlass = false
        /// Rollback, pin and unpin (operators and admins).
        var canWrite: Bool { csrf != nil && (role ?? .viewer) >= .operator }
        /// Past guards, and allow of a blocked version (admins).
        var canAdminister: Bool { csrf != nil && role == .admin }

        static let anonymous = Viewer(name: nil, csrf: nil)

        init(name: String?, csrf: String?) {
            self.name = name
            self.csrf = csrf
        }

        init(_ session: Sessions.Session) {
            name = session.name
            csrf = session.csrf
            role = session.identity.role
            breakGlass = session.identity.breakGlass
        }
    }

    static func e(_ text: String) -> String { HTML.escape(text) }
    static func u(_ text: String) -> String { HTTPEndpoint.encode(text) }

    /// The frame of every page. `live` names what ui.js refreshes on events
    /// (empty: a form, left alone).
    static func document(title: String, live: String, viewer: Viewer, styles: [String] = [], events: Bool = true, main: String) -> String {
        var out = """
        <!DOCTYPE html>
        <html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
        <title>\(e(title)) · Rewind</title>
        <link rel="icon" href="data:,">
        <link rel="stylesheet" href="/ui/ui.css">

        """
        for style in styles { out += "<link rel=\"stylesheet\" href=\"\(e(style))\">\n" }
        out += """
        <script src="/ui/ui.js" defer></script>
        </head>
        <body data-live="\(e(live))" data-events="\(events ? "on" : "off")">
        <a class="skip" href="#main">Skip to content</a>
        <header class="top"><nav aria-label="Main"><a href="/" class="brand">Rewind</a> <a href="/">Apps</a> <a href="/fleet">Fleet</a> <a href="/audit">Audit</a></nav>
        <div class="who">
        """
        if let name = viewer.name, let csrf = viewer.csrf {
            let role = viewer.role.map { " <span class=\"role\">(\($0.name)\(viewer.breakGlass ? ", break-glass" : ""))</span>" } ?? ""
            out += "<span>Signed in as <strong>\(e(name))</strong>\(role)</span> <form method=\"post\" action=\"/logout\" class=\"inline\">\(csrfField(csrf))<button type=\"submit\">Sign out</button></form>"
        } else {
            out += "<span>Read only</span>"
        }
        out += """
        </div><p id="live-state" class="live-state" role="status" aria-live="polite"></p></header>
        <main id="main" tabindex="-1">
        \(main)
        </main>
        <aside class="activity" aria-labelledby="activity-title"><h2 id="activity-title">Live activity</h2><ol id="activity" aria-live="polite"></ol></aside>
        </body></html>

        """
        return out
    }

    static func csrfField(_ csrf: String) -> String { "<input type=\"hidden\" name=\"csrf\" value=\"\(e(csrf))\">" }

    static func short(_ commit: String?) -> String { commit.map { String($0.prefix(8)) } ?? "-" }

    static func commitLink(_ commit: String?) -> String {
        guard let commit, !commit.isEmpty else { return "-" }
        return "<a href=\"/releases/\(u(commit))\"><code>\(e(short(commit)))</code></a>"
    }

    static func time(_ milliseconds: Int64?) -> String {
        guard let milliseconds else { return "-" }
        let text = Clock.iso8601UTC(milliseconds: milliseconds)
        return "<time datetime=\"\(e(text))\">\(e(text.replacing("T", with: " ").replacing("Z", with: " UTC")))</time>"
    }

    /// What is wrong with an app, the most pressing first.
    static func problem(_ app: AppStatus) -> String? { app.needsHuman ?? app.lastError ?? app.failed }

    static func health(_ health: String) -> String { "<span class=\"health health-\(e(health))\">\(e(health))</span>" }

    static func message(_ text: String, kind: String = "error") -> String {
        "<div class=\"message message-\(e(kind))\" role=\"\(kind == "error" ? "alert" : "status")\">\(e(text))</div>"
    }

    // MARK: Sign-in

    static func signIn(next: String, problem: String?, sso: Bool = false) -> String {
        let single = sso ? "<p class=\"card narrow\"><a class=\"button\" id=\"sso\" href=\"/login/oidc?next=\(u(next))\">Sign in with single sign-on</a></p>\n" : ""
        let main = """
        <h1>Sign in</h1>
        \(problem.map { message($0) } ?? "")
        \(single)<form method="post" action="/login" class="card narrow">
        <input type="hidden" name="next" value="\(e(next))">
        <label for="token">Token</label>
        <input id="token" name="token" type="password" autocomplete="current-password" required autofocus>
        <p class="hint">The API token, or your named token from the tokens file. It is never shown or logged.</p>
        <button type="submit">Sign in</button>
        </form>
        """
        return document(title: "Sign in", live: "", viewer: .anonymous, events: false, main: main)
    }

    // MARK: Overview

    static func overview(_ report: StatusReport, viewer: Viewer) -> String {
        var main = "<h1>Apps</h1>\n<p class=\"sub\">Branch <strong>\(e(report.branch))</strong>, tip \(commitLink(report.tip)), last applied \(commitLink(report.lastApplied))"
        main += report.reconcilerPid.map { ", reconciler pid \($0)" } ?? ", <strong>no reconciler running</strong>"
        main += report.host.map { ", host <strong>\(e($0))</strong>" } ?? ""
        main += ".</p>\n"
        if let halted = report.halted { main += message("Halted: \(halted)") + "\n" }
        if let refused = report.invalid {
            main += "<section class=\"message message-error\" aria-labelledby=\"refused-title\"><h2 id=\"refused-title\">Refused tip \(commitLink(refused.commit.hex))</h2><p>\(e(refused.message))</p>"
            if !refused.details.isEmpty { main += "<ul class=\"diagnostics\">" + refused.details.map { "<li><code>\(e($0))</code></li>" }.joined() + "</ul>" }
            main += "</section>\n"
        }
        if let error = report.lastError { main += message("Last error: \(error)") + "\n" }
        if !report.needsHuman.isEmpty {
            main += "<section class=\"message message-warn\" aria-labelledby=\"human-title\"><h2 id=\"human-title\">Needs a human</h2><ul>" + report.needsHuman.map { "<li>\(e($0))</li>" }.joined() + "</ul></section>\n"
        }
        main += """
        <div class="table-wrap"><table class="apps">
        <caption class="visually-hidden">Apps, their versions and health</caption>
        <thead><tr><th scope="col">App</th><th scope="col">Desired</th><th scope="col">Applied</th><th scope="col">Health</th><th scope="col">Pin</th><th scope="col">Waiting for</th><th scope="col">Last error</th><th scope="col">Last rollback</th><th scope="col"><span class="visually-hidden">Actions</span></th></tr></thead>
        <tbody>

        """
        for app in report.apps {
            let name = e(app.name)
            main += "<tr id=\"app-\(name)\" data-app=\"\(name)\" data-health=\"\(e(app.health.rawValue))\" data-applied=\"\(e(app.appliedVersion ?? ""))\">"
            main += "<th scope=\"row\"><a href=\"/apps/\(u(app.name))\">\(name)</a></th><td>\(e(app.desiredVersion ?? "-"))</td><td>\(e(app.appliedVersion ?? "-"))</td>"
            main += "<td>\(health(app.health.rawValue))\(app.healthIsLive ? "" : " <span class=\"hint\">(last seen)</span>")</td>"
            main += "<td>\(app.pin.map { "<span class=\"pin\">pinned to \(e(short($0)))</span>" } ?? "-")</td><td>\(e(app.waitingFor))</td>"
            main += "<td class=\"error-text\">\(e(problem(app) ?? ""))</td>"
            main += "<td>\(app.lastRollback.map { ($0.rollbackCommit.map { commitLink($0.hex) + " " } ?? "") + e($0.reason) } ?? "-")</td>"
            main += "<td>\(viewer.canWrite ? "<a class=\"button\" href=\"/apps/\(u(app.name))/rollback\">Roll back…</a>" : "")</td></tr>\n"
        }
        main += "</tbody></table></div>\n"
        if let remote = report.remote {
            main += "<section aria-labelledby=\"remote-title\"><h2 id=\"remote-title\">Remote</h2><p><code>\(e(remote.url))</code>: last sync \(time(remote.lastSuccessAt)), last attempt \(time(remote.lastAttemptAt))"
            main += remote.lastError.map { "; " + "<span class=\"error-text\">\(e($0))</span>" } ?? ""
            main += "</p></section>\n"
        }
        if !report.unpushed.isEmpty {
            main += "<section aria-labelledby=\"unpushed-title\"><h2 id=\"unpushed-title\">Unpushed commits</h2><table><thead><tr><th scope=\"col\">Commit</th><th scope=\"col\">Branch</th><th scope=\"col\">Queued</th><th scope=\"col\">Error</th></tr></thead><tbody>"
            for entry in report.unpushed {
                main += "<tr><td>\(commitLink(entry.commit))</td><td>\(e(shortBranchName(entry.reference)))</td><td>\(time(entry.queuedAt))</td><td>\(e(entry.lastError ?? ""))</td></tr>"
            }
            main += "</tbody></table></section>\n"
        }
        return document(title: "Apps", live: "overview", viewer: viewer, main: main)
    }

    // MARK: App

    struct AppPage: Sendable {
        let status: AppStatus
        /// Newest first.
        let releases: [(release: Release, outcome: ReleaseOutcome)]
        let total: Int
        let page: Int
        let perPage: Int
    }

    /// The app page's actions for a writer: roll back, pin or unpin, and (an admin) allow a blocked update.
    static func actions(_ a: AppStatus, csrf: String, admin: Bool) -> String {
        let name = e(a.name)
        var main = ""
        main += "<section class=\"actions\" aria-labelledby=\"actions-title\"><h2 id=\"actions-title\">Actions</h2>"
        main += "<p><a class=\"button\" href=\"/apps/\(u(a.name))/rollback\">Roll back to the default target…</a></p>"
        if a.pin == nil {
            main += """
            <form method="post" action="/apps/\(u(a.name))/pin" class="card">\(csrfField(csrf))
            <h3>Pin</h3><p class="hint">Holds \(name) where it is (or at a release you name) until unpinned; the reconciler will not move it.</p>
            <label for="pin-to">Release (empty: the current one)</label><input id="pin-to" name="to" placeholder="#3 or a commit">
            <label for="pin-reason">Reason</label><input id="pin-reason" name="reason" required>
            <button type="submit">Pin \(name)</button></form>
            """
        } else {
            main += """
            <form method="post" action="/apps/\(u(a.name))/unpin" class="card">\(csrfField(csrf))
            <h3>Unpin</h3><label for="unpin-reason">Reason</label><input id="unpin-reason" name="reason" required>
            <button type="submit">Unpin \(name)</button></form>
            """
        }
        if admin, let check = a.updates, check.state == .blocked, let version = check.tag ?? check.digest {
            main += """
            <form method="post" action="/apps/\(u(a.name))/allow" class="card">\(csrfField(csrf))<input type="hidden" name="version" value="\(e(version))">
            <h3>Allow \(e(version)) again</h3><p class="hint">It was rolled back, so updates do not propose it. Allowing it writes a commit that lets the next check propose it.</p>
            <label for="allow-reason">Reason</label><input id="allow-reason" name="reason" required>
            <button type="submit">Allow \(e(version))</button></form>
            """
        }
        main += "</section>\n"
        return main
    }

    /// What runs the applied version: the process or the container (with its image), its port and restarts.
    static func runs(_ a: AppStatus) -> String {
        guard a.pid != nil || a.container != nil else { return "" }
        let what = a.pid.map { "pid \($0)" } ?? a.container.map { "container \($0.prefix(12))" } ?? ""
        return "<dt>Runs</dt><dd id=\"app-runs\">\(e(what + (a.port.map { ", port \($0)" } ?? "") + ", \(a.restarts) restart\(a.restarts == 1 ? "" : "s")"))</dd>"
            + (a.image.map { "<dt>Image</dt><dd id=\"app-image\"><code>\(e($0))</code></dd>" } ?? "")
    }

    static func app(_ page: AppPage, viewer: Viewer, notice: String? = nil) -> String {
        let a = page.status
        let name = e(a.name)
        var main = "<h1>\(name)</h1>\n"
        if let notice { main += message(notice, kind: "ok") + "\n" }
        main += """
        <dl class="facts">
        <dt>Desired</dt><dd>\(e(a.desiredVersion ?? "-"))</dd><dt>Applied</dt><dd>\(e(a.appliedVersion ?? "-")) (\(commitLink(a.appliedCommit)))</dd>
        <dt>Health</dt><dd id="app-health">\(health(a.health.rawValue))</dd><dt>Pin</dt><dd>\(a.pin.map { "pinned to \(commitLink($0))" } ?? "none")</dd>
        \(runs(a))
        <dt>Waiting for</dt><dd>\(e(a.waitingFor))</dd><dt>Last error</dt><dd\(problem(a) == nil ? "" : " class=\"error-text\"")>\(e(problem(a) ?? "none"))</dd>
        \(a.updates.map { u in "<dt>Updates</dt><dd id=\"app-updates\"\(u.state == .blocked || u.state == .failed ? " class=\"error-text\"" : "")>\(e(u.state.rawValue)): \(e(u.message))</dd>" } ?? "")
        \(a.traffic.map { t in "<dt>Traffic</dt><dd id=\"app-traffic\">\(e("127.0.0.1:\(t.listenPort), \(t.strategy): \(t.line(app: a.name))"))\(t.held.map { " <span class=\"error-text\">drained: \(e($0))</span>" } ?? "")</dd>" } ?? "")
        </dl>

        """
        if viewer.canWrite, let csrf = viewer.csrf { main += actions(a, csrf: csrf, admin: viewer.canAdminister) }
        let first = (page.page - 1) * page.perPage + 1
        let last = first + page.releases.count - 1
        main += "<h2 id=\"releases-title\">Releases</h2>\n<p class=\"sub\">\(page.total) in all; newest first\(page.releases.isEmpty ? "" : ", showing \(page.total - last + 1)–\(page.total - first + 1)").</p>\n"
        main += """
        <div class="table-wrap"><table class="releases" aria-labelledby="releases-title">
        <thead><tr><th scope="col">#</th><th scope="col">Kind</th><th scope="col">Version</th><th scope="col">Commit</th><th scope="col">Author</th><th scope="col">Date</th><th scope="col">Trigger</th><th scope="col">Reason</th><th scope="col">Outcome</th><th scope="col">Rolled back by</th><th scope="col"><span class="visually-hidden">Actions</span></th></tr></thead>
        <tbody>

        """
        for (release, outcome) in page.releases {
            main += "<tr id=\"release-\(release.number)\"><td>#\(release.number)</td><td>\(e(release.kind.rawValue))</td>"
            main += "<td>\(e(release.previousVersion ?? "-")) → \(e(release.version ?? "-"))</td><td>\(commitLink(release.commit.hex))</td>"
            main += "<td>\(e(release.author))</td><td>\(time(release.time * 1000))</td>"
            main += "<td>\(e(outcome.trigger ?? ""))\(outcome.actor.map { " by \(e($0))" } ?? "")</td><td>\(e(outcome.reason ?? ""))</td>"
            main += "<td>\(outcome.outcome.map { "<span class=\"outcome outcome-\(e($0.rawValue))\">\(e($0.rawValue))</span>" } ?? "-")</td>"
            main += "<td>\(release.rolledBackBy.map { commitLink($0.hex) } ?? "")</td>"
            main += "<td>\(viewer.canWrite && release.tree != nil && release.tree?.hex != a.desiredTree ? "<a href=\"/apps/\(u(a.name))/rollback?to=%23\(release.number)\">Roll back to #\(release.number)…</a>" : "")</td></tr>\n"
        }
        main += "</tbody></table></div>\n<nav class=\"pager\" aria-label=\"Release pages\">"
        if page.page > 1 { main += "<a rel=\"prev\" href=\"/apps/\(u(a.name))?page=\(page.page - 1)\">← Newer</a> " }
        if last < page.total { main += "<a rel=\"next\" href=\"/apps/\(u(a.name))?page=\(page.page + 1)\">Older →</a>" }
        main += "</nav>\n"
        return document(title: a.name, live: "app", viewer: viewer, main: main)
    }

    // MARK: Release

    static func release(_ view: ReleaseView, viewer: Viewer) -> String {
        let d = view.details
        var main = "<h1>\(e(d.kind.rawValue.capitalized)) <code>\(e(d.commit.id.short))</code></h1>\n"
        main += "<p class=\"sub\">\(e(d.commit.author.name)) &lt;\(e(d.commit.author.email))&gt;, \(time(d.commit.author.time * 1000))"
        main += d.commit.parents.first.map { ", parent \(commitLink($0.hex))" } ?? ""
        main += d.target.map { ", restores \(commitLink($0.hex))" } ?? ""
        main += ".</p>\n"
        if let warning = d.warning { main += message(warning, kind: "warn") + "\n" }
        main += "<h2>Message</h2>\n<pre class=\"commit-message\">\(e(d.commit.message))</pre>\n"
        if let t = d.trailers {
            main += "<h2>Trailers</h2>\n<dl class=\"facts\"><dt>Action</dt><dd>\(e(t.action.rawValue))</dd><dt>Apps</dt><dd>\(e(t.apps.joined(separator: ", ")))</dd>"
            main += "<dt>Trigger</dt><dd>\(e(t.trigger.rawValue))</dd>"
            if let actor = t.actor { main += "<dt>Actor</dt><dd>\(e(actor))</dd>" }
            if let reason = t.reason { main += "<dt>Reason</dt><dd>\(e(reason))</dd>" }
            if let alert = t.alert { main += "<dt>Alert</dt><dd>\(e(alert))</dd>" }
            if !t.forced.isEmpty { main += "<dt>Forced</dt><dd>\(e(t.forced.joined(separator: "; ")))</dd>" }
            main += "</dl>\n"
        }
        main += "<h2>Apps changed</h2>\n"
        if d.apps.isEmpty { main += "<p>None.</p>\n" }
        for change in d.apps {
            main += "<section aria-label=\"\(e(change.app))\"><h3><a href=\"/apps/\(u(change.app))\">\(e(change.app))</a>: \(e(change.fromVersion ?? "-")) → \(e(change.toVersion ?? "-"))</h3>"
            if let diff = view.diffs.first(where: { $0.app == change.app })?.diff { main += diffBlock(diff) }
            main += "</section>\n"
        }
        main += "<h2>Notes</h2>\n"
        main += view.notes.isEmpty ? "<p>No notes yet (the reconciler writes them as it applies and checks a release).</p>\n"
            : "<ul class=\"notes\">" + view.notes.map { "<li><code>\(e($0))</code></li>" }.joined() + "</ul>\n"
        if !view.reach.isEmpty { main += reach(view.reach) }
        if let incident = view.incident { main += "<h2>Incident report</h2>\n<pre class=\"incident\">\(e(incident))</pre>\n" }
        return document(title: "Release \(d.commit.id.short)", live: "release", viewer: viewer, main: main)
    }

    /// A unified diff, one span per line with a class for its kind
    /// (added, removed, hunk, file): highlighting without a dependency.
    static func diffBlock(_ diff: String) -> String {
        guard !diff.isEmpty else { return "<p>No file changes.</p>" }
        var out = "<pre class=\"diff\" tabindex=\"0\" aria-label=\"Unified diff\"><code>"
        for line in diff.split(separator: "\n", omittingEmptySubsequences: false) {
            let kind: String
            if line.hasPrefix("+++") || line.hasPrefix("---") || line.hasPrefix("diff ") || line.hasPrefix("index ") { kind = "file" }
            else if line.hasPrefix("@@") { kind = "hunk" }
            else if line.hasPrefix("+") { kind = "add" }
            else if line.hasPrefix("-") { kind = "del" }
            else { kind = "ctx" }
            out += "<span class=\"d-\(kind)\">\(e(String(line)))</span>\n"
        }
        return out + "</code></pre>"
    }

    // MARK: Rollback preview

    /// The dry run's plan and a confirmation form, or the guard's refusal in words.
    static func rollbackPreview(app: String, to: String?, plan: DeskWrite?, refusal: RequestError?, force: Bool, reason: String, viewer: Viewer) -> String {
        var main = "<h1>Roll back \(e(app))</h1>\n<p class=\"sub\">Target: \(to.map { e($0) } ?? "the default (the newest earlier release verified healthy)"). Nothing is written until you confirm.</p>\n"
        if let refusal { main += message(refusal.message) + "\n" }
        if let plan {
            switch plan.outcome {
            case .alreadyDone(let why): main += message(why, kind: "ok") + "\n"
            case .planned, .written:
                if let p = plan.plan {
                    main += "<h2>The commit it would write</h2>\n<pre class=\"commit-message\">\(e(p.message))</pre>\n"
                    for change in p.changes { main += "<p><strong>\(e(change.app))</strong>: \(e(change.fromVersion ?? "-")) → \(e(change.toVersion ?? "-"))</p>\n" }
                    main += "<h2>Diff</h2>\n" + p.diffs.map { diffBlock($0.diff) }.joined(separator: "\n") + "\n"
                    main += "<h2>Guards</h2>\n<ul class=\"guards\">" + (p.guardsChecked.isEmpty ? "<li>No guard applies.</li>" : p.guardsChecked.map { "<li>\(e($0))</li>" }.joined()) + "</ul>\n"
                    if !p.forced.isEmpty { main += message("Forced past: \(p.forced.joined(separator: "; "))", kind: "warn") + "\n" }
                }
            }
        }
        let canConfirm: Bool = {
            if case .planned = plan?.outcome { return true }
            return refusal?.forceable == true
        }()
        if viewer.canWrite, !viewer.canAdminister, refusal?.forceable == true {
            main += message("Only an admin may roll back across this guard.", kind: "warn") + "\n"
        } else if viewer.canWrite, let csrf = viewer.csrf, canConfirm {
            main += """
            <form method="post" action="/apps/\(u(app))/rollback" class="card">\(csrfField(csrf))
            <h2>Confirm</h2>
            \(to.map { "<input type=\"hidden\" name=\"to\" value=\"\(e($0))\">" } ?? "")
            <label for="reason">Reason (written into the commit)</label>
            <input id="reason" name="reason" required value="\(e(reason))">

            """
            if (refusal?.forceable == true || force) && viewer.canAdminister {
                main += "<p><input type=\"checkbox\" id=\"force\" name=\"force\" value=\"1\"\(force ? " checked" : "")> <label for=\"force\" class=\"inline-label\">I have checked the data: roll back across the guard (recorded as Rewind-Forced)</label></p>\n"
            }
            main += "<button type=\"submit\" id=\"confirm\">Roll back \(e(app))</button> <a href=\"/apps/\(u(app))\">Cancel</a></form>\n"
        }
        return document(title: "Roll back \(app)", live: "", viewer: viewer, main: main)
    }

    // MARK: Audit

    static func audit(_ report: AuditReport?, since: String, until: String, problem: String?, viewer: Viewer) -> String {
        var main = """
        <form method="get" action="/audit" class="card range">
        <label for="since">Since</label><input id="since" name="since" value="\(e(since))" placeholder="30d, 2026-11-01">
        <label for="until">Until</label><input id="until" name="until" value="\(e(until))" placeholder="now">
        <button type="submit">Show</button></form>

        """
        if let problem { main += message(problem) + "\n" }
        if let report { main += "<div class=\"audit\">" + report.htmlBody(link: { "/releases/\($0.hex)" }) + "</div>\n" }
        return document(title: "Audit", live: "audit", viewer: viewer, styles: ["/ui/audit.css"], main: main)
    }

    // MARK: Errors

    static func error(_ status: Int, _ text: String, viewer: Viewer) -> String {
        document(title: "Error \(status)", live: "", viewer: viewer, main: "<h1>\(status == 404 ? "Not found" : status == 403 ? "Forbidden" : "Something went wrong")</h1>\n" + message(text) + "\n<p><a href=\"/\">Back to the apps</a></p>")
    }
}
