import Foundation
import LifeboatArchive
import LifeboatCore

/// `source: { s3: { endpoint, region, …, buckets, parallel } }`: S3 buckets mirrored with
/// history. Each backup is a snapshot: per bucket, an artifact holding the bucket's listing
/// (`listing.jsonl`: every key with size, ETag, time, content type, metadata and the address
/// of its content), and the contents themselves stored once, by SHA-256, under
/// `<policy>/blobs/` — shared by every bucket and every snapshot of the policy. A run over an
/// unchanged bucket costs only its LIST requests (`S3MirrorBackup`).
public struct S3MirrorKind: SourceKind {
    public init() {}

    public var name: String { "s3" }

    public var parser: SourceKindParser {
        SourceKindParser(kind: name) { node in
            guard let map = node.mapping(allowed: S3Connection.keys + ["buckets", "parallel"]) else { return nil }
            let connection = S3Connection.parse(map)
            let parallel = map["parallel"]?.int(in: 1...64)
            var buckets: [S3MirrorConfiguration.Bucket]?
            if let list = map.required("buckets")?.list() {
                buckets = Self.parseBuckets(list, node: map["buckets"])
            }
            guard let connection, let buckets, map["parallel"] == nil || parallel != nil else { return nil }
            return S3MirrorConfiguration(connection: connection, buckets: buckets, parallel: parallel ?? S3MirrorConfiguration.defaultParallel)
        }
    }

    /// `buckets: [name, { bucket: name, prefix: p/ }, …]`: names checked (they become
    /// directory names on a restore into a directory), each bucket once.
    static func parseBuckets(_ items: [ConfigNode], node: ConfigNode?) -> [S3MirrorConfiguration.Bucket]? {
        if items.isEmpty {
            node?.error("'buckets' is empty: name at least one bucket")
            return nil
        }
        var buckets: [S3MirrorConfiguration.Bucket] = []
        var valid = true
        for item in items {
            var name: String?, prefix = ""
            var nameNode = item
            if item.isScalar {
                name = item.string()
            } else if let entry = item.mapping(allowed: ["bucket", "prefix"]) {
                nameNode = entry["bucket"] ?? item
                name = entry.required("bucket")?.string()
                if let prefixNode = entry["prefix"] {
                    guard let text = prefixNode.string() else {
                        valid = false
                        continue
                    }
                    prefix = text
                }
            }
            guard let name else {
                valid = false
                continue
            }
            guard S3MirrorConfiguration.isValidBucketName(name) else {
                nameNode.error("'\(name)' is not a valid S3 bucket name",
                               hint: "Bucket names have 1 to 255 letters, digits, '.', '_' and '-', and start with a letter or digit.")
                valid = false
                continue
            }
            if buckets.contains(where: { $0.bucket == name }) {
                nameNode.error("bucket '\(name)' is listed twice", hint: "List each bucket once (with the prefix that covers what to mirror).")
                valid = false
                continue
            }
            buckets.append(S3MirrorConfiguration.Bucket(bucket: name, prefix: prefix))
        }
        return valid ? buckets : nil
    }

    public func backup(_ configuration: any SourceConfiguration, into sink: ArtifactSink, context: RunContext) throws -> BackupOutcome {
        try S3MirrorBackup(configuration: try S3MirrorConfiguration.of(configuration), sink: sink, context: context).run()
    }

    /// `--to s3://BUCKET[/PREFIX]`, or a directory.
    public func restoreLocation(commandLine text: String, workingDirectory: String, manifest: Manifest) throws -> RestoreTarget.Location {
        if text.hasPrefix("s3://") {
            let rest = text.dropFirst("s3://".count)
            let bucket = String(rest.prefix { $0 != "/" })
            let prefix = S3RepositoryConfig.normalizedPrefix(String(rest.dropFirst(bucket.count)))
            guard S3MirrorConfiguration.isValidBucketName(bucket) else {
                throw LifeboatError(.usage, "'\(text)' names no valid bucket", hint: "Write the target as s3://BUCKET[/PREFIX].")
            }
            return .s3(bucket: bucket, prefix: prefix)
        }
        guard !text.isEmpty, !text.contains("://") else {
            throw LifeboatError(.usage, "'\(text)' is neither a directory nor an s3://BUCKET[/PREFIX] target")
        }
        return .directory(text.hasPrefix("/") ? text : URL(fileURLWithPath: workingDirectory).appendingPathComponent(text).standardizedFileURL.path)
    }

    public func restore(_ manifest: Manifest, from repository: Repository, to target: RestoreTarget,
                        configuration: (any SourceConfiguration)?, context: RunContext) throws -> RestoreReport {
        try S3MirrorRestore(manifest: manifest, repository: repository, source: configuration as? S3MirrorConfiguration,
                            context: context).run(to: target)
    }

    public func verifyDependencies(of manifest: Manifest, in repository: Repository, context: RunContext) throws -> [VerificationProblem] {
        try verifyDependencies(of: manifest, in: repository, options: VerifyOptions(), context: context)
    }

    public func verifyDependencies(of manifest: Manifest, in repository: Repository, options: VerifyOptions,
                                   context: RunContext) throws -> [VerificationProblem] {
        try S3MirrorVerify(manifest: manifest, repository: repository, options: options, context: context).run()
    }

    /// Deletes the blobs no kept snapshot references (`S3MirrorPrune`).
    public func pruneDependencies(policy: String, kept: [Manifest], in repository: Repository, dryRun: Bool,
                                  context: RunContext) throws -> DependencyPruneReport? {
        try S3MirrorPrune(policy: policy, kept: kept, repository: repository, dryRun: dryRun, context: context).run()
    }

    public func listSummary(of manifest: Manifest) -> ListSummary? {
        guard let record = try? manifest.source.details(as: S3MirrorRecord.self) else { return nil }
        return ListSummary(sourceBytes: record.buckets.reduce(0) { $0 + $1.bytes },
                           lines: record.buckets.map { bucket in
                               "s3://\(bucket.bucket)/\(bucket.prefix): \(bucket.objects) object\(bucket.objects == 1 ? "" : "s"), \(formatBytes(bucket.bytes))"
                                   + " (copied \(bucket.copiedObjects), \(formatBytes(bucket.copiedBytes)))"
                           })
    }

    public func leftovers(of target: RestoreTarget) -> String {
        if case .directory(let path) = target.location {
            return "What the restore had written into '\(path)' was removed; run it again."
        }
        return "The target bucket holds the objects written before the restore stopped; run it again (it writes only what still differs)."
    }
}

/// An `s3` source's configuration.
public struct S3MirrorConfiguration: SourceConfiguration {
    public struct Bucket: Sendable, Equatable, Codable {
        public var bucket: String
        /// Only keys starting with this (empty: the whole bucket).
        public var prefix: String

        public init(bucket: String, prefix: String = "") {
            self.bucket = bucket
            self.prefix = prefix
        }
    }

    /// Endpoint, region, addressing, credentials and CA of the source (bucket and prefix empty).
    public var connection: S3RepositoryConfig
    public var buckets: [Bucket]
    /// Objects copied at once (`parallel`).
    public var parallel: Int
    public static let defaultParallel = 8

    public init(connection: S3RepositoryConfig, buckets: [Bucket], parallel: Int = Self.defaultParallel) {
        self.connection = connection
        self.buckets = buckets
        self.parallel = parallel
    }

    public var kind: String { "s3" }
    public var secrets: [String] { [connection.secretAccessKey, connection.sessionToken].compactMap { $0 } }
    /// A directory, or a bucket (`s3: s3://BUCKET/PREFIX`).
    public var restoreTargetKeys: [String] { ["path", "s3"] }

    /// 1 to 255 letters, digits, `.`, `_`, `-`, starting with a letter or digit: S3's rules
    /// and the legacy ones, and always safe as a directory name.
    public static func isValidBucketName(_ name: String) -> Bool {
        guard let first = name.unicodeScalars.first, name.utf8.count <= 255 else { return false }
        func isAlphanumeric(_ c: Unicode.Scalar) -> Bool { ("a"..."z").contains(c) || ("A"..."Z").contains(c) || ("0"..."9").contains(c) }
        return isAlphanumeric(first) && name.unicodeScalars.allSatisfy { isAlphanumeric($0) || $0 == "." || $0 == "_" || $0 == "-" }
    }
}

/// What an S3 mirror backup records in its manifest (`source.s3`): where the buckets were
/// (no credentials), and per bucket its listing's artifact and counts.
public struct S3MirrorRecord: Codable, Equatable, Sendable {
    public struct Bucket: Codable, Equatable, Sendable {
        public var bucket: String
        public var prefix: String
        /// The artifact holding the listing (`data/0000.tar.zst`).
        public var artifact: String
        public var objects: Int64
        public var bytes: Int64
        /// Objects whose content was read from the source in this run (new or changed).
        public var copiedObjects: Int64
        public var copiedBytes: Int64
        /// Objects deleted between the listing and their copy (left out of the snapshot).
        public var vanished: Int64
        /// Keys that kept changing while they were copied (left out: the snapshot is incomplete).
        public var changedDuringCopy: [String]?
    }

    public var endpoint: String
    public var region: String
    public var pathStyle: Bool
    /// How the snapshot addresses contents (`sha256`: `<policy>/blobs/<aa>/<hex>`).
    public var blobScheme: String
    public var buckets: [Bucket]
    /// The backup whose listings this run compared with (nil: none, every object was read).
    public var base: String?
}

extension ArtifactRole {
    /// An S3 mirror snapshot's listing of one bucket (`listing.jsonl`).
    public static let s3Listing = ArtifactRole("s3-listing")
}
