import Foundation
import LifeboatCore
import LifeboatIO
import Logging

/// `lifeboat check`'s look beyond the files: each repository the policies use (reachable,
/// credentials accepted, format understood) and each source that can be looked at without
/// side effects (a `files` source's directory). It reads; it never writes.
public struct RepositoryCheck {
    public let configuration: Configuration
    public let context: RunContext

    public init(configuration: Configuration, context: RunContext) {
        self.configuration = configuration
        self.context = context
    }

    public struct Result: Sendable, Encodable {
        /// "repository" or "source".
        public var kind: String
        public var name: String
        /// The repository's name when `kind` is "repository" (the key scripts read before sources were checked).
        public var repository: String?
        public var location: String
        /// "ok", "empty" (no backup written there yet) or "failed".
        public var state: String
        public var detail: String
    }

    public func run() -> [Result] {
        let repositories = configuration.repositoriesInUse.map { config in
            var location = config.name
            do {
                let store = try Repository.store(config, context: context)
                location = store.location
                let repository = try Repository.open(config, store: store, context: context)
                guard try repository.format() != nil else {
                    return Result(kind: "repository", name: config.name, repository: config.name, location: location, state: "empty",
                                  detail: "reachable; no backup written there yet (the first backup creates it)")
                }
                return Result(kind: "repository", name: config.name, repository: config.name, location: location, state: "ok",
                              detail: "reachable; repository format understood" + (repository.store is EncryptedStore ? "; encrypted, and the key opens it" : ""))
            } catch {
                return Result(kind: "repository", name: config.name, repository: config.name, location: location, state: "failed", detail: "\(error)")
            }
        }
        let sources = configuration.policies.compactMap { policy -> Result? in
            if let mirror = policy.source as? S3MirrorConfiguration { return check(mirror, of: policy) }
            guard let files = policy.source as? FilesConfiguration else { return nil }
            guard isDirectory(files.path) else {
                return Result(kind: "source", name: policy.name, repository: nil, location: files.path, state: "failed",
                              detail: "directory '\(files.path)' to back up does not exist or is not a directory (\(policy.file): source.files.path)")
            }
            guard access(files.path, R_OK | X_OK) == 0 else {
                return Result(kind: "source", name: policy.name, repository: nil, location: files.path, state: "failed",
                              detail: "directory '\(files.path)' cannot be read by this user")
            }
            return Result(kind: "source", name: policy.name, repository: nil, location: files.path, state: "ok", detail: "directory exists and is readable")
        }
        return repositories + sources
    }

    /// An S3 mirror's source: credentials accepted, and each bucket listable (one LIST of one key).
    func check(_ mirror: S3MirrorConfiguration, of policy: Policy) -> Result {
        let location = mirror.connection.endpoint
        do {
            let endpoint = try S3Endpoint(mirror.connection, what: "the s3 source of policy '\(policy.name)'", context: context)
            for bucket in mirror.buckets {
                _ = try endpoint.client(bucket: bucket.bucket).listObjectsV2(prefix: bucket.prefix, maxKeys: 1)
            }
            return Result(kind: "source", name: policy.name, repository: nil, location: location, state: "ok",
                          detail: "buckets listable: \(mirror.buckets.map(\.bucket).joined(separator: ", "))")
        } catch {
            return Result(kind: "source", name: policy.name, repository: nil, location: location, state: "failed", detail: "\(error)")
        }
    }
}
