import Foundation
import Synchronization

/// Defence in depth for "secrets never appear in output": every secret Lifeboat learns
/// (passwords from conninfo, S3 secret keys) is registered here, and every line of output
/// (log lines, error messages) passes through `redact` before it is written.
///
/// The code already avoids putting secrets into messages; this catches the ones that slip
/// through from elsewhere, such as a server echoing a connection string back.
public enum Secrets {
    private static let registered = Mutex<Set<String>>([])

    /// Registers a secret. Very short values are ignored: replacing every "a" in every
    /// message would destroy the messages and protect nothing.
    public static func register(_ secret: String?) {
        guard let secret, secret.count >= 4 else { return }
        registered.withLock { _ = $0.insert(secret) }
    }

    public static func redact(_ text: String) -> String {
        let secrets = registered.withLock { $0 }
        guard !secrets.isEmpty else { return text }
        var result = text
        // Longest first, so a secret containing another is replaced whole.
        for secret in secrets.sorted(by: { $0.count > $1.count }) where result.contains(secret) {
            result = result.replacingOccurrences(of: secret, with: "********")
        }
        return result
    }
}
