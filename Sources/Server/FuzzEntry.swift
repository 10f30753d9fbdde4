import HTTPTypes
import Rollback

/// The server's parsers of webhook input, public for the fuzz targets (Fuzz/).
public enum WebhookInputs {
    /// Parses an Alertmanager webhook body; true when it is accepted.
    public static func alertmanager(_ bytes: [UInt8]) -> Bool {
        (try? AlertmanagerPayload.parse(bytes)) != nil
    }

    /// Checks a push webhook's signature headers against `secret`; true when accepted.
    public static func gitPush(headers: [(String, String)], body: [UInt8], secret: String?) -> Bool {
        var fields = HTTPFields()
        for (name, value) in headers {
            if let name = HTTPField.Name(name) { fields.append(HTTPField(name: name, value: value)) }
        }
        return (try? GitPushHook.verify(headers: fields, body: body, secret: secret)) != nil
    }
}

/// The web UI's parsers of outside input, public for the fuzz targets.
public enum WebInputs {
    /// A form body as the UI's POST handlers read it.
    public static func form(_ bytes: [UInt8]) -> [String: String] { FormBody.parse(bytes) }

    /// Parses a tokens file. On success, whether every token finds its own
    /// name; on failure, the error's text.
    public static func tokens(_ text: String) -> Result<Bool, RewindError> {
        do {
            let credentials = try Credentials.parse(text, file: "tokens")
            return .success(credentials.entries.allSatisfy { credentials.lookup(String(decoding: $0.token, as: UTF8.self)) == $0.identity })
        } catch {
            return .failure(error)
        }
    }
}
