/// An AWS access key pair, optionally with a session token (temporary credentials).
///
/// Printing never shows the secret or the token: `description`, `debugDescription` and the
/// reflection used by `dump` and `String(reflecting:)` show the access key id masked
/// (`AKIA…MPLE`) and `<redacted>` in place of the secret and the token.
public struct AWSCredentials: Sendable, Equatable {
    public var accessKeyID: String
    public var secretAccessKey: String
    /// The `x-amz-security-token` of temporary credentials (STS, instance roles).
    public var sessionToken: String?

    public init(accessKeyID: String, secretAccessKey: String, sessionToken: String? = nil) {
        self.accessKeyID = accessKeyID
        self.secretAccessKey = secretAccessKey
        self.sessionToken = sessionToken
    }

    /// The first four and last four characters of `text` around an ellipsis (`AKIA…MPLE`);
    /// text of eight characters or fewer is masked entirely (`…`).
    public static func mask(_ text: String) -> String {
        guard text.count > 8 else { return "…" }
        return "\(text.prefix(4))…\(text.suffix(4))"
    }
}

extension AWSCredentials: CustomStringConvertible, CustomDebugStringConvertible, CustomReflectable {
    /// `AWSCredentials(accessKeyID: AKIA…MPLE, secretAccessKey: <redacted>[, sessionToken: <redacted>])`.
    public var description: String {
        let token = sessionToken == nil ? "" : ", sessionToken: <redacted>"
        return "AWSCredentials(accessKeyID: \(Self.mask(accessKeyID)), secretAccessKey: <redacted>\(token))"
    }

    public var debugDescription: String { description }

    /// Masked children, so that `dump` shows the shape without the secrets.
    public var customMirror: Mirror {
        Mirror(
            self,
            children: [
                "accessKeyID": Self.mask(accessKeyID),
                "secretAccessKey": "<redacted>",
                "sessionToken": sessionToken == nil ? "none" : "<redacted>",
            ] as KeyValuePairs<String, Any>,
            displayStyle: .struct
        )
    }
}
