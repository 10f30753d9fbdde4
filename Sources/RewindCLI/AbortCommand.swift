import ArgumentParser
import DeployModel
import FoundationEssentials
import Rollback
import SystemSupport

/// `rewind abort APP`.
struct AbortCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "abort",
        abstract: "Take a rollout's new version out of traffic at once, then write the rollback commit (trigger manual).")
    @OptionGroup var control: RolloutControl
    func run() throws { try control.send(.abort) }
}
