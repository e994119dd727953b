/// A repository given on the command line instead of by name: `--repository /var/backups/lifeboat`
/// or `--repository s3://acme-dr/lifeboat/` (with `--endpoint`, `--region`, and credentials from
/// the usual environment). This is how a fresh machine with nothing but the repository's
/// address lists, verifies and restores.
public enum RepositoryAddress {
    public struct S3Options: Sendable, Equatable {
        public var endpoint: String?
        public var region: String?
        public var pathStyle: Bool
        public var caBundle: String?

        public init(endpoint: String? = nil, region: String? = nil, pathStyle: Bool = true, caBundle: String? = nil) {
            self.endpoint = endpoint
            self.region = region
            self.pathStyle = pathStyle
            self.caBundle = caBundle
        }
    }

    /// The configuration of the repository at `address`.
    /// - Parameters:
    ///   - workingDirectory: what a relative path is relative to.
    ///   - environment: `AWS_ENDPOINT_URL_S3`, `AWS_ENDPOINT_URL`, `AWS_REGION`,
    ///     `AWS_DEFAULT_REGION` fill in what the options leave out.
    public static func parse(_ address: String, s3 options: S3Options, workingDirectory: String,
                             environment: [String: String]) throws -> RepositoryConfig {
        let name = "command-line"
        guard address.hasPrefix("s3://") else {
            guard !address.contains("://") else {
                throw LifeboatError(.usage, "repository address '\(address)' is neither a path nor an s3://bucket/prefix address")
            }
            return RepositoryConfig(name: name, kind: .local(path: resolvePath(address, in: workingDirectory)))
        }
        let rest = address.dropFirst("s3://".count)
        let bucket = String(rest.prefix { $0 != "/" })
        let prefix = String(rest.dropFirst(bucket.count))
        guard !bucket.isEmpty else {
            throw LifeboatError(.usage, "repository address '\(address)' names no bucket", hint: "Write it as s3://BUCKET[/PREFIX].")
        }
        guard let endpoint = options.endpoint ?? environment["AWS_ENDPOINT_URL_S3"] ?? environment["AWS_ENDPOINT_URL"] else {
            throw LifeboatError(.usage, "repository \(address) needs an S3 endpoint",
                                hint: "Pass --endpoint https://s3.REGION.amazonaws.com (or http://minio:9000), or set AWS_ENDPOINT_URL.")
        }
        guard endpoint.hasPrefix("http://") || endpoint.hasPrefix("https://") else {
            throw LifeboatError(.usage, "S3 endpoint '\(endpoint)' must start with http:// or https://")
        }
        let region = options.region ?? environment["AWS_REGION"] ?? environment["AWS_DEFAULT_REGION"] ?? "us-east-1"
        return RepositoryConfig(name: name, kind: .s3(S3RepositoryConfig(
            endpoint: endpoint, region: region, bucket: bucket, prefix: S3RepositoryConfig.normalizedPrefix(prefix),
            accessKeyID: nil, secretAccessKey: nil, sessionToken: nil, profile: nil, pathStyle: options.pathStyle,
            caBundle: options.caBundle.map { resolvePath($0, in: workingDirectory) })))
    }
}
