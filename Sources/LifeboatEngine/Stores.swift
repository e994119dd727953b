import Foundation
import LifeboatCore
import LifeboatHTTP
import LifeboatIO
import LifeboatS3
import Logging

extension Repository {
    /// Opens the repository a configuration names.
    public static func open(
        _ config: RepositoryConfig, environment: [String: String] = ProcessInfo.processInfo.environment,
        logger: Logger = Logger(label: "lifeboat")
    ) throws -> Repository {
        switch config.kind {
        case .local(let path):
            return Repository(name: config.name, store: LocalStore(root: path))
        case .s3(let s3):
            let credentials = try S3Credentials.resolve(repository: config.name, config: s3, environment: environment) { path in
                pathExists(path) ? try readTextFile(path) : nil
            }
            let http = try HTTPClient(configuration: HTTPClient.Configuration(caBundle: s3.caBundle), environment: environment)
            let client = try S3Client(
                configuration: S3Client.Configuration(endpoint: s3.endpoint, region: s3.region, bucket: s3.bucket,
                                                      pathStyle: s3.pathStyle, credentials: credentials,
                                                      checksum: S3Checksum(rawValue: s3.checksum) ?? .sha256),
                http: http, logger: logger)
            let store = S3Store(client: client, prefix: s3.prefix, concurrency: s3.concurrency, readAhead: 4, logger: logger)
            return Repository(name: config.name, store: store)
        }
    }
}
