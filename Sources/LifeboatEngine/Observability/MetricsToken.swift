import Foundation
import LifeboatCore
import LifeboatIO

/// The I/O edge of `listen_token_file:`: reads the token `/metrics` requires. Like a key
/// file, the token file must be readable by its owner only; a token others can read is
/// refused, not warned about.
public enum MetricsToken {
    public static func read(_ path: String) throws -> BearerToken {
        guard let mode = try filePermissions(path) else {
            throw LifeboatError(.configuration, "the metrics token file \(path) (listen_token_file in lifeboat.yaml) does not exist",
                                hint: "Write the token into it (one line, e.g. 'openssl rand -hex 32 > \(path)'), or remove listen_token_file.")
        }
        guard mode & 0o077 == 0 else {
            throw LifeboatError(.configuration, "the metrics token file \(path) can be read by others (mode \(String(mode, radix: 8)))",
                                hint: "Run 'chmod 600 \(path)'.")
        }
        let text = try readTextFile(path)
        guard let token = BearerToken(fileText: text) else {
            throw LifeboatError(.configuration, "the metrics token file \(path) is empty",
                                hint: "Write the token into it (one line, e.g. 'openssl rand -hex 32 > \(path)').")
        }
        Secrets.register(text.trimmingCharacters(in: .whitespacesAndNewlines))
        return token
    }
}
