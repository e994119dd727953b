import Foundation
import LifeboatCore
import Logging

/// `lifeboat check`'s look at each repository the policies use: reachable, credentials
/// accepted, format understood. It reads; it never writes.
public struct RepositoryCheck {
    public let configuration: Configuration
    public let logger: Logger

    public init(configuration: Configuration, logger: Logger) {
        self.configuration = configuration
        self.logger = logger
    }

    public struct Result: Sendable, Encodable {
        public var repository: String
        public var location: String
        /// "ok", "empty" (no backup written there yet) or "failed".
        public var state: String
        public var detail: String
    }

    /// The repositories used by a policy, or the default one when there are no policies.
    public var repositoriesInUse: [RepositoryConfig] {
        var names = Set(configuration.policies.map { $0.repository ?? configuration.defaultRepository })
        if names.isEmpty { names.insert(configuration.defaultRepository) }
        return configuration.repositories.filter { names.contains($0.name) }
    }

    public func run() -> [Result] {
        repositoriesInUse.map { config in
            var location = config.name
            do {
                let repository = try Repository.open(config, logger: logger)
                location = repository.store.location
                guard try repository.store.stat(key: Repository.formatKey) != nil else {
                    return Result(repository: config.name, location: location, state: "empty",
                                  detail: "reachable; no backup written there yet (the first backup creates it)")
                }
                try repository.checkFormat()
                return Result(repository: config.name, location: location, state: "ok",
                              detail: "reachable; repository format understood")
            } catch {
                return Result(repository: config.name, location: location, state: "failed", detail: "\(error)")
            }
        }
    }
}
