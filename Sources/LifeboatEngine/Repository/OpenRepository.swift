import Foundation
import LifeboatCore
import LifeboatHTTP
import LifeboatIO
import LifeboatS3
import Logging

extension Repository {
    /// Opens the repository a configuration names. Requests it makes carry the context's
    /// logger, retry policy and cancellation.
    public static func open(_ config: RepositoryConfig, context: RunContext) throws -> Repository {
        try open(config, store: try store(config, context: context), context: context)
    }

    /// The repository on `store` (from `store(_:context:)`), encrypted when the configuration
    /// says so: this reads the repository's key set (or checks that it has none).
    public static func open(_ config: RepositoryConfig, store: any ObjectStore, context: RunContext) throws -> Repository {
        Repository(name: config.name, store: try RepositoryEncryption.wrap(store, config: config, context: context), config: config)
    }

    /// The store a configuration names, as it is (without encryption), before any request —
    /// inside `CrashAfterOperations` when the crash harness asks for it.
    public static func store(_ config: RepositoryConfig, context: RunContext) throws -> any ObjectStore {
        CrashAfterOperations.wrap(try plainStore(config, context: context), environment: context.environment, logger: context.logger)
    }

    private static func plainStore(_ config: RepositoryConfig, context: RunContext) throws -> any ObjectStore {
        switch config.kind {
        case .local(let path):
            return LocalStore(root: path)
        case .s3(let s3):
            let credentials = try S3Credentials.resolve(repository: config.name, config: s3, environment: context.environment) { path in
                pathExists(path) ? try readTextFile(path) : nil
            }
            let http = try s3.httpClient(timeout: context.requestTimeout, what: "repository '\(config.name)'", context: context)
            let client = try S3Client(
                configuration: S3Client.Configuration(endpoint: s3.endpoint, region: s3.region, bucket: s3.bucket,
                                                      pathStyle: s3.pathStyle, credentials: credentials, retry: context.retry,
                                                      checksum: S3Checksum(rawValue: s3.checksum) ?? .crc32c),
                http: http, logger: context.logger, sleep: context.sleep)
            let store = S3Store(client: client, prefix: s3.prefix, concurrency: s3.concurrency, readAhead: 4, logger: context.logger)
            context.logger.debug("repository opened", metadata: ["repository.name": "\(config.name)", "repository.location": "\(store.location)"])
            return store
        }
    }

    /// The same repository opened for `context` (for cleanup that must not be cancelled);
    /// itself when it was not opened from a configuration.
    public func reopened(context: RunContext) -> Repository {
        guard let config else { return self }
        do {
            return try Repository.open(config, context: context)
        } catch {
            context.logger.warning("could not open repository '\(name)' again for cleanup; using the run's connection", metadata: ["error": "\(error)"])
            return self
        }
    }
}
