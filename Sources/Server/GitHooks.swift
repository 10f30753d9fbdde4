import Crypto
import FoundationEssentials
import HTTPTypes
import Hummingbird
import Synchronization

/// Push webhooks from git hosts at `POST /hooks/git`. The signature is
/// checked before anything else is done:
///
/// - GitHub: `X-Hub-Signature-256: sha256=<hex>`, HMAC-SHA256 of the raw body;
/// - Gitea and Forgejo: `X-Gitea-Signature` / `X-Forgejo-Signature: <hex>`, the same HMAC;
/// - GitLab: `X-Gitlab-Token: <secret>`, compared as is.
///
/// All comparisons take constant time. The delivery id (`X-GitHub-Delivery`,
/// `X-Gitea-Delivery`, `X-Gitlab-Event-UUID`) deduplicates redeliveries.
enum GitPushHook {
    struct Delivery {
        let provider: String
        let id: String?
    }

    static func verify(headers: HTTPFields, body: [UInt8], secret: String?) throws(RequestError) -> Delivery {
        func header(_ name: String) -> String? { HTTPField.Name(name).flatMap { headers[$0] } }
        let provider: String
        let id: String?
        var hmacHex: String?
        var token: String?
        if let signature = header("X-Gitea-Signature") ?? header("X-Forgejo-Signature") {
            provider = header("X-Forgejo-Signature") != nil && header("X-Gitea-Signature") == nil ? "forgejo" : "gitea"
            id = header("X-Gitea-Delivery") ?? header("X-Forgejo-Delivery")
            hmacHex = signature
        } else if let signature = header("X-Hub-Signature-256") {
            provider = "github"
            id = header("X-GitHub-Delivery")
            guard signature.hasPrefix("sha256=") else { throw RequestError(401, "X-Hub-Signature-256 must start with sha256=") }
            hmacHex = String(signature.dropFirst("sha256=".count))
        } else if let given = header("X-Gitlab-Token") {
            provider = "gitlab"
            id = header("X-Gitlab-Event-UUID") ?? header("Idempotency-Key")
            token = given
        } else {
            provider = header("X-GitHub-Event") != nil ? "github" : header("X-Gitlab-Event") != nil ? "gitlab" : "unknown"
            id = header("X-GitHub-Delivery") ?? header("X-Gitea-Delivery") ?? header("X-Gitlab-Event-UUID")
        }
        guard let secret else { return Delivery(provider: provider, id: id) }
        if let hmacHex {
            guard constantTimeEqual(Array(hmacHex.lowercased().utf8), Array(signatureHex(secret: secret, body: body).utf8)) else {
                throw RequestError(401, "the webhook signature does not match the configured secret")
            }
        } else if let token {
            guard constantTimeEqual(Array(token.utf8), Array(secret.utf8)) else { throw RequestError(401, "X-Gitlab-Token does not match the configured secret") }
        } else {
            throw RequestError(401, "the webhook is not signed: configure the same secret on the git host (X-Hub-Signature-256, X-Gitea-Signature or X-Gitlab-Token)")
        }
        return Delivery(provider: provider, id: id)
    }

    /// HMAC-SHA256 of `body` keyed with `secret`, as lowercase hex.
    static func signatureHex(secret: String, body: [UInt8]) -> String {
        let mac = HMAC<SHA256>.authenticationCode(for: body, using: SymmetricKey(data: Array(secret.utf8)))
        let digits = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        for byte in mac { out += [digits[Int(byte >> 4)], digits[Int(byte & 15)]] }
        return String(decoding: out, as: UTF8.self)
    }
}

/// The delivery ids seen lately (the last 1,000), to answer a redelivery
/// without fetching again.
final class SeenDeliveries: Sendable {
    private let state = Mutex<(order: [String], set: Set<String>)>(([], []))

    /// True the first time an id is seen (always true without an id).
    func firstTime(_ id: String?) -> Bool {
        guard let id, !id.isEmpty else { return true }
        return state.withLock { state in
            guard state.set.insert(id).inserted else { return false }
            state.order.append(id)
            if state.order.count > 1_000 { state.set.remove(state.order.removeFirst()) }
            return true
        }
    }
}
