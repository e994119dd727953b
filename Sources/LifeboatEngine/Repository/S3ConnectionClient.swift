import Foundation
import LifeboatCore
import LifeboatHTTP
import LifeboatIO

extension S3RepositoryConfig {
    /// The HTTP client for this S3 connection: its CA bundle, and certificate verification
    /// unless `insecure_skip_tls_verify: true` — which is then logged as a warning naming
    /// `what` (the repository, the policy's source, the check) each time a client is made, so
    /// every run that uses the connection says so.
    func httpClient(timeout: Duration?, what: String, context: RunContext) throws -> HTTPClient {
        if insecureSkipTLSVerify {
            context.logger.warning("TLS certificate verification is off for \(what) (insecure_skip_tls_verify: true): anyone on the path to \(endpoint) can read and change its traffic",
                                   metadata: ["s3.endpoint": "\(endpoint)"])
        }
        return try HTTPClient(configuration: HTTPClient.Configuration(timeout: timeout, verifyTLS: !insecureSkipTLSVerify, caBundle: caBundle),
                              environment: context.environment, cancellation: context.cancellation)
    }
}
