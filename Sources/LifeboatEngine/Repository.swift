import Foundation
import LifeboatCore
import LifeboatIO

/// A Lifeboat repository on an object store: the layout, the format marker, listing and the
/// manifest commit point. The repository describes itself: everything here is read from the
/// store, nothing from local state.
///
/// ```
/// lifeboat.json                                  format version, created
/// <policy>/backups/<id>/manifest.json            committed last
/// <policy>/backups/<id>/data/<n>.tar.zst         artifacts
/// ```
public struct Repository: Sendable {
    public static let formatKey = "lifeboat.json"
    public static let currentFormat = 1

    public let name: String
    public let store: any ObjectStore

    public init(name: String, store: any ObjectStore) {
        self.name = name
        self.store = store
    }

    struct FormatRecord: Codable {
        var format: Int
        var created: Date
        var tool: ToolRecord
    }

    /// Opens the store for writing backups, creating the format marker on first use.
    public func prepareForWriting(now: Date) throws {
        if try store.stat(key: Self.formatKey) == nil {
            let record = FormatRecord(format: Self.currentFormat, created: now, tool: ToolRecord(version: LifeboatVersion.current))
            do {
                try store.put(key: Self.formatKey, bytes: Array(try JSON.encode(record)), ifAbsent: true)
            } catch let error as LifeboatError where error.code == .alreadyExists {
                // Another process created it first; fall through to reading it.
            }
        }
        try checkFormat()
    }

    /// Checks that the store holds a repository of a format this version understands.
    public func checkFormat() throws {
        let bytes: [UInt8]
        do {
            bytes = try store.readAll(key: Self.formatKey, limit: 1 << 20)
        } catch let error as LifeboatError where error.code == .notFound {
            throw LifeboatError(.notFound, "no Lifeboat repository at \(store.location) (repository '\(name)'): \(Self.formatKey) is missing",
                                hint: "Check the repository's path or bucket and prefix; a repository is created by its first backup.")
        }
        let record: FormatRecord
        do {
            record = try JSON.decode(FormatRecord.self, from: Data(bytes))
        } catch {
            throw LifeboatError(.integrity, "\(Self.formatKey) in \(store.location) is not a valid repository marker: \(error)")
        }
        if record.format > Self.currentFormat {
            throw LifeboatError(.usage, "repository \(store.location) has format \(record.format); this Lifeboat (\(LifeboatVersion.current)) reads format \(Self.currentFormat) and older",
                                hint: "Upgrade Lifeboat to read this repository.")
        }
    }

    // MARK: Layout

    /// Where a key is, for messages: `/var/backups/lifeboat/pg/…`, `s3://bucket/prefix/pg/…`.
    public func locate(_ key: String) -> String {
        store.location.hasSuffix("/") ? store.location + key : store.location + "/" + key
    }

    public static func backupPrefix(policy: String) -> String { "\(policy)/backups/" }
    public static func backupDirectory(policy: String, id: String) -> String { "\(policy)/backups/\(id)/" }
    public static func manifestKey(policy: String, id: String) -> String { backupDirectory(policy: policy, id: id) + "manifest.json" }
    public static func artifactKey(policy: String, id: String, path: String) -> String { backupDirectory(policy: policy, id: id) + path }

    // MARK: Listing

    /// What the store holds for one backup directory.
    public struct BackupListing: Sendable, Equatable {
        public var id: String
        /// Whether its manifest is committed. A backup without one is an interrupted backup:
        /// it is never listed as complete, verified or restored; `prune` removes it.
        public var committed: Bool
        public var objectCount: Int
        public var bytes: Int64
    }

    /// Every backup directory of a policy, oldest first, committed or not.
    public func listBackups(policy: String) throws -> [BackupListing] {
        let prefix = Self.backupPrefix(policy: policy)
        var byID: [String: BackupListing] = [:]
        try store.forEachObject(prefix: prefix) { object in
            let rest = object.key.dropFirst(prefix.count)
            guard let slash = rest.firstIndex(of: "/") else { return true }
            let id = String(rest[..<slash])
            guard BackupID.isValid(id) else { return true }
            var listing = byID[id] ?? BackupListing(id: id, committed: false, objectCount: 0, bytes: 0)
            listing.objectCount += 1
            listing.bytes += object.size
            if rest[rest.index(after: slash)...] == "manifest.json" { listing.committed = true }
            byID[id] = listing
            return true
        }
        return byID.values.sorted { $0.id < $1.id }
    }

    public func manifest(policy: String, id: String) throws -> Manifest {
        let key = Self.manifestKey(policy: policy, id: id)
        let bytes: [UInt8]
        do {
            bytes = try store.readAll(key: key)
        } catch let error as LifeboatError where error.code == .notFound {
            if try listBackups(policy: policy).contains(where: { $0.id == id }) {
                throw LifeboatError(.notFound, "backup \(id) of policy '\(policy)' has no committed manifest: it was interrupted and cannot be restored",
                                    hint: "Choose another backup ('lifeboat list \(policy)'). Its data under \(locate(Self.backupDirectory(policy: policy, id: id))) is garbage and may be deleted.")
            }
            throw LifeboatError(.notFound, "policy '\(policy)' has no backup \(id) in \(store.location)",
                                hint: "Run 'lifeboat list \(policy)' to see its backups.")
        }
        let manifest: Manifest
        do {
            manifest = try JSON.decode(Manifest.self, from: Data(bytes))
        } catch {
            throw LifeboatError(.integrity, "manifest \(key) in \(store.location) cannot be read: \(error)")
        }
        if manifest.format > Manifest.currentFormat {
            throw LifeboatError(.usage, "manifest \(key) has format \(manifest.format); this Lifeboat reads format \(Manifest.currentFormat) and older",
                                hint: "Upgrade Lifeboat to restore this backup.")
        }
        guard manifest.policy == policy, manifest.id == id else {
            throw LifeboatError(.integrity, "manifest \(key) describes backup \(manifest.id) of policy '\(manifest.policy)', not \(id) of '\(policy)'")
        }
        return manifest
    }

    /// Resolves `latest` or an identifier to a committed manifest.
    public func resolve(policy: String, selector: String) throws -> Manifest {
        if selector == "latest" {
            guard let latest = try listBackups(policy: policy).last(where: \.committed) else {
                throw LifeboatError(.notFound, "policy '\(policy)' has no committed backup in repository '\(name)' (\(store.location))",
                                    hint: "Run 'lifeboat backup \(policy)' first.")
            }
            return try manifest(policy: policy, id: latest.id)
        }
        guard BackupID.isValid(selector) else {
            throw LifeboatError(.usage, "'\(selector)' is not a backup id (like 20261121T020000Z) or 'latest'")
        }
        return try manifest(policy: policy, id: selector)
    }

    /// The commit point: writes the manifest atomically, refusing to replace one.
    public func commit(_ manifest: Manifest) throws {
        let key = Self.manifestKey(policy: manifest.policy, id: manifest.id)
        do {
            try store.put(key: key, bytes: Array(try JSON.encode(manifest)), ifAbsent: true)
        } catch let error as LifeboatError where error.code == .alreadyExists {
            throw LifeboatError(
                .alreadyExists, "backup \(manifest.id) of policy '\(manifest.policy)' is already committed at \(locate(key)); a committed backup is never replaced",
                hint: "Another Lifeboat process may have made a backup of this policy with the same id; run the backup again.",
                underlying: error)
        }
    }
}

/// JSON as Lifeboat writes it: sorted keys, ISO 8601 dates, readable.
public enum JSON {
    public static func encode<T: Encodable>(_ value: T) throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        encoder.dateEncodingStrategy = .iso8601
        return try encoder.encode(value)
    }

    public static func decode<T: Decodable>(_ type: T.Type, from data: Data) throws -> T {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        return try decoder.decode(type, from: data)
    }
}
