import ArgumentParser
import ReconcilerStatus
import Rollback
import SystemSupport

/// `rewind logs APP`: the app's captured output (like `kubectl logs`).
struct LogsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "logs",
        abstract: "Print an app's captured output (<state>/logs/APP.log): every version's, in order.")

    @Argument(help: "The app.", completion: AppNames.completion)
    var app: String

    @Flag(name: .shortAndLong, help: "Keep printing what the app writes, until interrupted.")
    var follow = false

    @Option(help: "Only the last N lines (default: all).")
    var tail: Int?

    @Option(help: "The state directory (default: <git dir>/rewind/state).")
    var stateDir: String?

    // Last: the shared repository options come after the command's own in --help.
    @OptionGroup var repoOptions: RepoOptions

    func validate() throws {
        if let tail, tail < 0 { throw ValidationError("--tail must be 0 or more") }
    }

    func run() throws {
        try runReporting {
            let repo = try repoOptions.openWithMirror(sync: false).repo
            let store = StateStore(repo, directory: stateDir)
            let names = (try? repo.configForListing(at: try repo.tip()).config.apps.map(\.name)) ?? []
            guard names.contains(app) || store.loadApp(app) != nil else {
                throw RewindError(.notFound, "unknown app '\(Bounded.text(app))'", hint: "apps in rewind.yaml: \(names.joined(separator: ", "))")
            }
            let file = store.logFile(app)
            var offset = 0
            if let size = FileIO.size(file) {
                let start = tail.map { Self.startOfLastLines(file, size: size, count: $0) } ?? 0
                offset = Self.copy(file, from: start, to: size)
            } else if !follow {
                Terminal.error("\(app) has written nothing yet (no \(file))")
                return
            }
            guard follow else { return }
            let stop = SignalStop()
            while !stop.wait(milliseconds: 100) {
                guard let size = FileIO.size(file) else { continue }
                if size < offset { offset = 0 }  // truncated or replaced: from its start
                if size > offset { offset = Self.copy(file, from: offset, to: size) }
            }
        }
    }

    /// Writes bytes `from..<to` of `file` to stdout, in pieces; returns where it stopped.
    static func copy(_ file: String, from start: Int, to end: Int) -> Int {
        var offset = start
        while offset < end {
            guard let bytes = FileIO.read(file, offset: offset, count: min(65_536, end - offset)), !bytes.isEmpty else { break }
            Terminal.write(1, bytes)
            offset += bytes.count
        }
        return offset
    }

    /// The offset where the last `count` lines of the file begin.
    static func startOfLastLines(_ file: String, size: Int, count: Int) -> Int {
        guard count > 0 else { return size }
        var newlines = 0
        var position = size
        while position > 0 {
            let from = max(0, position - 65_536)
            guard let chunk = FileIO.read(file, offset: from, count: position - from) else { return 0 }
            for index in chunk.indices.reversed() where chunk[index] == UInt8(ascii: "\n") {
                // A newline that ends the file does not start a line.
                if from + index == size - 1 { continue }
                newlines += 1
                if newlines == count { return from + index + 1 }
            }
            position = from
        }
        return 0
    }
}
