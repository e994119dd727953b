import Foundation
import LifeboatCore
import LifeboatHTTP
import LifeboatIO
import LifeboatS3

/// An S3 service reached with a connection's settings: one HTTP client (one pool of
/// connections, the run's cancellation) and an S3 client per bucket over it.
struct S3Endpoint: Sendable {
    let connection: S3RepositoryConfig
    let http: HTTPClient
    let credentials: AWSCredentials
    let context: RunContext

    /// - Parameter what: names the endpoint in the credentials' error ("the source of policy 'p'").
    init(_ connection: S3RepositoryConfig, what: String, context: RunContext) throws {
        self.connection = connection
        self.context = context
        credentials = try S3Credentials.resolve(repository: what, config: connection, environment: context.environment) { path in
            pathExists(path) ? try readTextFile(path) : nil
        }
        http = try connection.httpClient(timeout: context.requestTimeout, what: what, context: context)
    }

    func client(bucket: String) throws -> S3Client {
        try S3Client(
            configuration: S3Client.Configuration(endpoint: connection.endpoint, region: connection.region, bucket: bucket,
                                                  pathStyle: connection.pathStyle, credentials: credentials, retry: context.retry,
                                                  checksum: S3Checksum(rawValue: connection.checksum) ?? .crc32c),
            http: http, logger: context.logger, sleep: context.sleep)
    }

    /// Every object under `prefix`, page after page (one page in memory), keys as exact bytes.
    static func forEachObject(in client: S3Client, prefix: String, context: RunContext,
                              _ body: (MirrorListedObject) throws -> Void) throws {
        let pager = ListingPager(client: client, prefix: prefix, context: context)
        while let object = try pager.next() { try body(object) }
    }

    static func milliseconds(_ date: Date) -> Int64 {
        Int64((date.timeIntervalSince1970 * 1000).rounded())
    }
}

/// A bucket's listing under a prefix, pulled one object at a time (one page in memory).
final class ListingPager {
    let client: S3Client
    let prefix: String
    let context: RunContext
    private var page: [S3Client.ListedObject] = []
    private var index = 0
    private var token: String?
    private var cursors: ListingCursors
    private var finished = false

    init(client: S3Client, prefix: String, context: RunContext) {
        self.client = client
        self.prefix = prefix
        self.context = context
        cursors = ListingCursors(listing: client.display(prefix))
    }

    func next() throws -> MirrorListedObject? {
        while index == page.count {
            guard !finished else { return nil }
            try context.cancellation.checkCancelled()
            let result = try client.listObjectsV2(prefix: prefix, continuationToken: token, maxKeys: 1000, urlEncodedKeys: true)
            page = result.objects
            index = 0
            token = result.nextContinuationToken
            if let token { try cursors.follow(token) }
            finished = token == nil
        }
        let object = page[index]
        index += 1
        return MirrorListedObject(key: Array(object.key.utf8), size: object.size, etag: object.etag,
                                  modified: S3Endpoint.milliseconds(object.modified))
    }
}
