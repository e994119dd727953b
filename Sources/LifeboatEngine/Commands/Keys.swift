import Foundation
import LifeboatCore
import LifeboatIO

/// `lifeboat key list|add|remove`: the master keys that open an encrypted repository. Adding
/// a key wraps the repository's key set once more; removing one deletes its key file. No
/// data is rewritten either way.
public struct KeyCommand {
    public let context: RunContext

    public init(context: RunContext) {
        self.context = context
    }

    public struct Report: Sendable, Encodable {
        public var repository: String
        public var location: String
        public var keySet: String
        public var keys: [Key]

        public struct Key: Sendable, Encodable {
            public var id: String
            public var created: Date
            /// Whether it is the key the configuration gives (the one this command used).
            public var current: Bool
        }
    }

    /// The repository, opened with the configured key (a wrong key fails here).
    func open(_ config: RepositoryConfig) throws -> (EncryptedStore, MasterKey) {
        guard let encryption = config.encryption else {
            throw LifeboatError(.usage, "repository '\(config.name)' is not configured with encryption: it has no keys",
                                hint: "Keys belong to repositories with 'encryption:' in lifeboat.yaml (or --key-file with --repository).")
        }
        let repository = try Repository.open(config, context: context)
        guard let store = repository.store as? EncryptedStore else {
            throw LifeboatError(.internalError, "repository '\(config.name)' was opened without encryption")
        }
        return (store, try RepositoryEncryption.masterKey(encryption, repository: config.name, environment: context.environment))
    }

    public func list(repository config: RepositoryConfig) throws -> Report {
        let (store, master) = try open(config)
        let keyring = RepositoryKeyring(store: store.inner, repository: config.name)
        let records = try keyring.records()
        let keySet = records.first(where: { $0.id == master.id })?.keySet ?? "none yet"
        return Report(repository: config.name, location: store.location, keySet: keySet,
                      keys: records.map { Report.Key(id: $0.id, created: $0.created, current: $0.id == master.id) })
    }

    /// Adds the key in `newKey` (a key file or variable, read as the configured key is).
    public func add(repository config: RepositoryConfig, newKey: EncryptionConfig) throws -> Report.Key {
        let (store, master) = try open(config)
        let new = try RepositoryEncryption.masterKey(newKey, repository: config.name, environment: context.environment)
        let record = try RepositoryKeyring(store: store.inner, repository: config.name).add(new, current: master, now: context.clock(), random: .system)
        context.logger.info("key added", metadata: ["repository.name": "\(config.name)", "key.id": "\(record.id)"])
        return Report.Key(id: record.id, created: record.created, current: false)
    }

    public func remove(repository config: RepositoryConfig, id: String) throws {
        let (store, master) = try open(config)
        try RepositoryKeyring(store: store.inner, repository: config.name).remove(id: id, current: master)
        context.logger.info("key removed", metadata: ["repository.name": "\(config.name)", "key.id": "\(id)"])
    }
}
