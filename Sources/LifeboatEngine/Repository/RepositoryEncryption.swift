import Foundation
import LifeboatCore
import LifeboatIO

/// The I/O edge of repository encryption: reading the master key from its file or variable,
/// and wrapping a repository's store in an `EncryptedStore` (the format lives in the core).
public enum RepositoryEncryption {
    /// The master key `config` names. A key file must exist and be readable by its owner only
    /// (like ssh's private keys: a key others can read is refused, not warned about).
    public static func masterKey(_ config: EncryptionConfig, repository: String, environment: [String: String]) throws -> MasterKey {
        let text: String
        switch config.key {
        case .file(let path):
            guard let mode = try filePermissions(path) else {
                throw LifeboatError(.configuration, "the key file \(path) of repository '\(repository)' does not exist",
                                    hint: "Check encryption.key_file in lifeboat.yaml, or restore the key file from where you keep its copy.")
            }
            guard mode & 0o077 == 0 else {
                throw LifeboatError(.configuration, "the key file \(path) of repository '\(repository)' can be read by others (mode \(String(mode, radix: 8)))",
                                    hint: "Run 'chmod 600 \(path)': the key opens every backup in the repository.")
            }
            text = try readTextFile(path)
        case .environment(let name):
            guard let value = environment[name], !value.isEmpty else {
                throw LifeboatError(.configuration, "environment variable \(name), which holds the key of repository '\(repository)', is not set",
                                    hint: "Set \(name) to the repository's key, or change encryption.key_env in lifeboat.yaml.")
            }
            text = value
        }
        Secrets.register(text.trimmingCharacters(in: .whitespacesAndNewlines))
        return try MasterKey.parse(text, origin: config.origin)
    }

    /// The store as the configuration says to use it: encrypted when it has `encryption:`.
    /// Refuses an encrypted repository opened without a key, and an unencrypted one (one
    /// with backups but no key set) opened with one.
    public static func wrap(_ store: any ObjectStore, config: RepositoryConfig, context: RunContext) throws -> any ObjectStore {
        let keyring = RepositoryKeyring(store: store, repository: config.name)
        guard let encryption = config.encryption else {
            if try keyring.isEncrypted() {
                throw LifeboatError(.configuration, "repository '\(config.name)' (\(store.location)) is encrypted, and lifeboat.yaml gives no key for it",
                                    hint: "Add 'encryption: { key_file: PATH }' (or key_env) to repository '\(config.name)' in lifeboat.yaml; with --repository, give --key-file.")
            }
            return store
        }
        let master = try masterKey(encryption, repository: config.name, environment: context.environment)
        let encrypted = try EncryptedStore(inner: store, repository: config.name, master: master, now: context.clock)
        if !encrypted.hasKeySet, try store.stat(key: Repository.formatKey) != nil {
            // The key files were looked for before the marker, and a first encrypted backup
            // writes the key set just before the marker (`prepareForWriting`): look again.
            let again = try EncryptedStore(inner: store, repository: config.name, master: master, now: context.clock)
            if again.hasKeySet { return again }
            throw LifeboatError(.configuration, "repository '\(config.name)' (\(store.location)) holds unencrypted backups; encryption cannot be turned on for it",
                                hint: "Encrypt a new, empty repository (another path or prefix) and let new backups go there, or remove 'encryption:' from repository '\(config.name)'.")
        }
        return encrypted
    }
}
