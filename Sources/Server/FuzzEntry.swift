import HTTPTypes

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
