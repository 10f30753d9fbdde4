import GitKit

/// Remote's parsers of outside input, public for the fuzz targets (Fuzz/).
public enum RemoteInputs {
    /// Checks `key` for `url`'s host against known_hosts `text`; nil when trusted.
    public static func knownHostsProblem(text: String, url: RemoteURL, key: HostKey) -> String? {
        KnownHosts.problem(with: key, for: url, text: text, file: "known_hosts")
    }
}
