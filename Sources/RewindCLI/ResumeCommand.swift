import ArgumentParser
import DeployModel
import FoundationEssentials
import Rollback
import SystemSupport

/// `rewind resume APP`.
struct ResumeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "resume",
        abstract: "Go on with a paused rollout: the step's remaining time runs again.")
    @OptionGroup var control: RolloutControl
    func run() throws { try control.send(.resume) }
}
