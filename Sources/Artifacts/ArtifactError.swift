/// Why an artifact could not be pulled, checked or unpacked: what, and
/// where (never a credential).
public struct ArtifactError: Error, CustomStringConvertible, Sendable, Equatable {
    public let description: String
    public init(_ description: String) { self.description = description }
}
