import ArgumentParser

/// A command line read without ArgumentParser, for the commands run in an
/// incident (`rewind revert`, `rewind rollback`).
///
/// ArgumentParser learns a command's options by reflecting on the command:
/// for `revert` that was about 2.5 ms of a 12 ms run, while the Swift runtime
/// built metadata and scanned the binary's 4,900 conformances for each new
/// type. Here the plain forms are read directly (`--name value`,
/// `--name=value`, flags, the positional arguments), and fill the same
/// command values that ArgumentParser would fill. Anything else makes the
/// line incomplete: help, an option this command does not have, an option
/// given twice, an empty value or one that starts with `-` (ArgumentParser
/// refuses `--reason=`), a value its type refuses, `--`, a missing or extra
/// argument, a failed `validate()`. The caller then hands the line to
/// ArgumentParser, which reads it or says what is wrong with it.
/// QuickLineTests checks that both readings agree.
///
/// Each options type fills a value of itself (`static func quick`), not an
/// `init`: inside an initializer, Swift turns `dryRun = true` on a wrapped
/// property that has an initial value into a new wrapper made by
/// `init(wrappedValue:)`, which ArgumentParser then reads as an unparsed
/// definition (it stops the process: "Can't read a value from a parsable
/// argument definition").
package struct QuickLine {
    private let arguments: [String]
    private var used: [Bool]
    private var refused = false

    package init(_ arguments: [String]) {
        self.arguments = arguments
        used = Array(repeating: false, count: arguments.count)
    }

    /// True when every argument was read and none was refused.
    package var isComplete: Bool { !refused && !used.contains(false) }

    /// The value of `--name value` or `--name=value`, parsed as ArgumentParser
    /// parses it; nil when the option is absent (or refused).
    package mutating func option<Value: ExpressibleByArgument>(_ name: String) -> Value? {
        let matches = arguments.indices.filter { arguments[$0] == name || arguments[$0].hasPrefix(name + "=") }
        guard let index = matches.first else { return nil }
        guard matches.count == 1 else { return refuse() }
        let attached = arguments[index] != name
        let valueIndex = attached ? index : index + 1
        guard arguments.indices.contains(valueIndex) else { return refuse() }
        let text = attached ? String(arguments[index].dropFirst(name.count + 1)) : arguments[valueIndex]
        guard !text.isEmpty, !text.hasPrefix("-"), let value = Value(argument: text) else { return refuse() }
        used[index] = true
        used[valueIndex] = true
        return value
    }

    /// Whether the flag `--name` is present.
    package mutating func flag(_ name: String) -> Bool {
        let matches = arguments.indices.filter { arguments[$0] == name }
        guard let index = matches.first else { return false }
        guard matches.count == 1 else {
            refused = true
            return false
        }
        used[index] = true
        return true
    }

    /// The next positional argument; read it after every option, so that
    /// options' values are not taken for it.
    package mutating func argument() -> String? {
        guard let index = positionalsLeft.first else { return refuse() }
        used[index] = true
        return arguments[index]
    }

    /// Every positional argument left, in order (read after every option).
    package mutating func remainingArguments() -> [String] {
        let indices = positionalsLeft
        for index in indices { used[index] = true }
        return indices.map { arguments[$0] }
    }

    /// The arguments not read yet that are not options.
    private var positionalsLeft: [Int] { arguments.indices.filter { !used[$0] && !arguments[$0].hasPrefix("-") } }

    /// A write command read whole, once it and its option groups pass the
    /// `validate()` ArgumentParser runs after reading; nil otherwise, and
    /// ArgumentParser reads the line and says what is wrong.
    func finished<Command: ParsableCommand>(_ command: Command, write: WriteOptions, repo: RepoOptions) -> Command? {
        guard isComplete else { return nil }
        var (checked, write, repo) = (command, write, repo)
        do {
            try write.waiting.validate()
            try write.validate()
            try repo.remote.validate()
            try repo.validate()
            try checked.validate()
        } catch {
            return nil
        }
        return command
    }

    private mutating func refuse<T>() -> T? {
        refused = true
        return nil
    }
}
