import ArgumentParser
import Rollback

/// `rewind init DIR`: a new deployment repository from the template.
struct InitCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "init",
        abstract: "Create a new deployment repository from the built-in template (deploy-repo-template/).")

    @Argument(help: "The directory to create; it must not exist or be empty.")
    var directory: String

    @Flag(help: "Create a bare repository (for a server or a mirror).")
    var bare = false

    func run() throws {
        try runReporting {
            let files = embeddedTemplate.map { NewRepository.File(path: $0.path, executable: $0.executable, text: $0.text) }
            let commit = try NewRepository.create(at: directory, files: files, bare: bare, message: "Initial deployment state from the Rewind template\n")
            Terminal.print("Created \(bare ? "bare " : "")deployment repository \(directory) on branch main at \(commit.short)")
            Terminal.print("Next: rewind --help, or `rewind releases --repo \(directory)`")
        }
    }
}
