import FoundationEssentials
import SystemSupport

/// A push notification of the distribution registry (`POST /hooks/registry`):
/// the envelope `{"events": [...]}` of media type
/// `application/vnd.docker.distribution.events.v1+json`. Only pushes of a
/// tagged manifest matter: each names a repository whose followers are
/// checked at once (the registry is asked again; the event's digest is not trusted).
struct RegistryNotification: Decodable, Sendable {
    let events: [Event]

    struct Event: Decodable, Sendable {
        let action: String?
        let target: Target?
    }

    struct Target: Decodable, Sendable {
        let repository: String?
        let tag: String?
        let digest: String?
        let mediaType: String?
    }

    /// Decodes a body; the error says what is wrong, for a 400.
    static func parse(_ bytes: [UInt8]) throws(RequestError) -> RegistryNotification {
        try decodeWebhook(RegistryNotification.self, bytes, what: "a registry notification envelope (JSON with an events list)", within: "the registry notification")
    }

    /// The repositories that had a tag pushed, without repeats, in order.
    var pushedRepositories: [String] {
        var seen: [String] = []
        for event in events where event.action == "push" {
            guard let repository = event.target?.repository, event.target?.tag?.isEmpty == false, !seen.contains(repository) else { continue }
            seen.append(Bounded.text(repository, limit: 255))
        }
        return seen
    }
}
