import ArgumentParser
import DeployModel
import FoundationEssentials
import Rollback
import SystemSupport

/// `rewind pause APP`.
struct PauseCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pause",
        abstract: "Hold a rollout at its current weights (analysis goes on, and a breach still aborts).")
    @OptionGroup var control: RolloutControl
    func run() throws { try control.send(.pause) }
}
