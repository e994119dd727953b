import Foundation
import LifeboatCore
import LifeboatS3

/// A drill's scratch prefix in an S3 mirror's restore bucket: where its snapshot is restored
/// (`lifeboat-drill-<id>/` before the step's own prefix), reached as the restore reaches it,
/// and emptied afterwards.
public struct S3MirrorScratch: Codable, Sendable, Equatable {
    public var policy: String
    public var endpoint: String
    public var region: String
    public var pathStyle: Bool
    public var caBundle: String?
    public var bucket: String
    /// Ends with `/`; every key under it is the drill's.
    public var prefix: String

    /// The scratch place of a restore of `manifest` (an S3 mirror backup) into `bucket`.
    public static func make(manifest: Manifest, bucket: String, prefix: String, options: MirrorRestoreOptions?) throws -> S3MirrorScratch {
        let record = try manifest.source.details(as: S3MirrorRecord.self)
        return S3MirrorScratch(policy: manifest.policy, endpoint: options?.endpoint ?? record.endpoint,
                               region: options?.region ?? record.region, pathStyle: options?.pathStyle ?? record.pathStyle,
                               caBundle: options?.caBundle, bucket: bucket, prefix: prefix)
    }

    /// Aborts every multipart upload under the prefix (a drill killed while copying a large
    /// object leaves its upload, which no listing of objects shows and the bucket keeps — and
    /// bills — until aborted), then deletes every object under it; returns how many objects.
    /// `source`: the policy's source
    /// when the configuration has it (its credentials serve a target on the same endpoint, as
    /// in the restore); otherwise credentials come from the environment.
    @discardableResult
    public func removeObjects(source: (any SourceConfiguration)?, context: RunContext) throws -> Int {
        var connection: S3RepositoryConfig
        if let mirror = source as? S3MirrorConfiguration, mirror.connection.endpoint == endpoint {
            connection = mirror.connection
        } else {
            connection = S3RepositoryConfig(endpoint: endpoint, region: region, bucket: "", prefix: "", accessKeyID: nil,
                                            secretAccessKey: nil, sessionToken: nil, profile: nil, pathStyle: pathStyle, caBundle: nil)
        }
        connection.region = region
        connection.pathStyle = pathStyle
        if let caBundle { connection.caBundle = caBundle }
        let client = try S3Endpoint(connection, what: "the drill's scratch prefix s3://\(bucket)/\(prefix)", context: context).client(bucket: bucket)
        for upload in try client.listMultipartUploads(prefix: prefix) {
            try client.abortMultipartUpload(key: upload.key, uploadID: upload.uploadID)
        }
        var removed = 0
        while true {
            let page = try client.listObjectsV2(prefix: prefix)
            if page.objects.isEmpty { break }
            try client.deleteObjects(keys: page.objects.map(\.key))
            removed += page.objects.count
        }
        return removed
    }
}
