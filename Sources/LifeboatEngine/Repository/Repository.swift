import Foundation
import LifeboatCore
import LifeboatIO

/// A Lifeboat repository on an object store: the layout, the format marker, listing and the
/// manifest commit point. The repository describes itself: everything here is read from the
/// store, nothing from local state.
///
/// ```
/// lifeboat.json                                  format version, created
/// locks/<lock-id>.json                           shared and exclusive locks (see RepositoryLock)
/// <policy>/backups/<id>/reservation.json         written first, removed once committed
/// <policy>/backups/<id>/manifest.json            committed last
/// <policy>/backups/<id>/data/<n>.tar.zst         artifacts
/// ```
public struct Repository: Sendable {
    public static let formatKey = "lifeboat.json"
    /// 2: backup ids with a random suffix, reservations and locks. Format 1 repositories are
    /// read as they are, and marked format 2 by the first backup written to them, so that an
    /// older Lifeboat refuses them instead of missing the backups it cannot name.
    public static let currentFormat = 2

    public let name: String
    public let store: any ObjectStore
    /// The configuration it was opened from, to open it again (for cleanup that must not be
    /// cancelled); nil for a store given directly.
    public let config: RepositoryConfig?

    public init(name: String, store: any ObjectStore, config: RepositoryConfig? = nil) {
        self.name = name
        self.store = store
        self.config = config
    }

    public struct FormatRecord: Codable, Sendable {
        public var format: Int
        public var created: Date
        public var tool: ToolRecord
    }

    /// Opens the store for writing backups, creating the format marker on first use (and
    /// raising a format 1 marker to this version's format).
    public func prepareForWriting(now: Date) throws {
        // Reservations, locks and the commit point rely on conditional creates: a store that
        // cannot do them could let two runs take one id, or replace a committed manifest.
        guard store.features.contains(.conditionalWrite) else {
            throw LifeboatError(.storage, "repository '\(name)' (\(store.location)) cannot create objects conditionally, which backups need",
                                hint: "Use a store with conditional writes (a local directory, AWS S3, MinIO, Ceph Reef or newer).")
        }
        // An encrypted repository's key set comes before its marker: a marker without a key file
        // then means an unencrypted repository (`RepositoryEncryption.wrap`), never a first
        // encrypted backup running at this moment.
        if let encrypted = store as? EncryptedStore { _ = try encrypted.keySet(create: true) }
        var existing = try format()
        if existing == nil {
            let record = FormatRecord(format: Self.currentFormat, created: now, tool: ToolRecord(version: LifeboatVersion.current))
            do {
                try store.put(key: Self.formatKey, bytes: Array(try JSON.encode(record)), ifAbsent: true)
                existing = record
            } catch let error as LifeboatError where error.code == .alreadyExists {
                existing = try format()  // another process created it first: theirs counts
            }
        }
        if var upgraded = existing, upgraded.format < Self.currentFormat {
            upgraded.format = Self.currentFormat
            try store.put(key: Self.formatKey, bytes: Array(try JSON.encode(upgraded)), ifAbsent: false)
        }
    }

    /// The repository's format marker, checked to be a format this version understands; nil
    /// when the store holds no repository (yet). One read: no `stat` before it.
    public func format() throws -> FormatRecord? {
        guard let record = try readJSON(FormatRecord.self, key: Self.formatKey,
                                        invalid: "\(Self.formatKey) in \(store.location) is not a valid repository marker",
                                        hint: "Check that \(store.location) is a Lifeboat repository; the marker is written by the first backup.")
        else { return nil }
        if record.format > Self.currentFormat {
            throw LifeboatError(.usage, "repository \(store.location) has format \(record.format); this Lifeboat (\(LifeboatVersion.current)) reads format \(Self.currentFormat) and older",
                                hint: "Upgrade Lifeboat to read this repository.")
        }
        return record
    }

    /// A small JSON record (at most 1 MiB), or nil when the object does not exist. One read, no
    /// `stat` before it. One that does not decode is `.integrity`: `invalid`, the reason, `hint`.
    public func readJSON<T: Decodable>(_ type: T.Type, key: String, invalid: String, hint: String) throws -> T? {
        let bytes: [UInt8]
        do {
            bytes = try store.readAll(key: key, limit: 1 << 20)
        } catch let error as LifeboatError where error.code == .notFound {
            return nil
        }
        do {
            return try JSON.decode(T.self, from: Data(bytes))
        } catch {
            throw LifeboatError(.integrity, "\(invalid): \(Self.describe(decodingError: error))", hint: hint)
        }
    }

    /// Checks that the store holds a repository of a format this version understands.
    public func requireFormat() throws {
        guard try format() != nil else {
            throw LifeboatError(.notFound, "no Lifeboat repository at \(store.location) (repository '\(name)'): \(Self.formatKey) is missing",
                                hint: "Check the repository's path or bucket and prefix; a repository is created by its first backup.")
        }
    }

    // MARK: Content addresses

    /// How this repository addresses content (mirror blobs): keyed (HMAC-SHA-256 under the
    /// key set's HMAC key) when it is encrypted, plain SHA-256 otherwise. `forWriting` creates
    /// the key set of an encrypted repository that has none yet.
    public func contentAddressing(forWriting: Bool = false) throws -> ContentAddressing {
        guard let encrypted = store as? EncryptedStore else { return .sha256 }
        return .keyed(try encrypted.keySet(create: forWriting).hmacKey)
    }

    /// The addressing of `scheme`, when this repository can compute it: a keyed address needs
    /// the repository's key.
    public func contentAddressing(scheme: String) throws -> ContentAddressing {
        let own = try contentAddressing()
        if scheme == own.scheme { return own }
        if scheme == BlobAddress.sha256Scheme { return .sha256 }
        throw LifeboatError(.integrity, "repository '\(name)' (\(store.location)) is not encrypted, but a snapshot in it addresses content by '\(scheme)'",
                            hint: "The snapshot was written into an encrypted repository: open that one (with its key).")
    }

    // MARK: Layout

    /// Where a key is, for messages: `/var/backups/lifeboat/pg/…`, `s3://bucket/prefix/pg/…`.
    public func locate(_ key: String) -> String {
        store.location.hasSuffix("/") ? store.location + key : store.location + "/" + key
    }

    public static let locksPrefix = "locks/"
    public static func backupPrefix(policy: String) -> String { "\(policy)/backups/" }
    public static func backupDirectory(policy: String, id: String) -> String { "\(policy)/backups/\(id)/" }
    public static func manifestKey(policy: String, id: String) -> String { backupDirectory(policy: policy, id: id) + "manifest.json" }
    public static func reservationKey(policy: String, id: String) -> String { backupDirectory(policy: policy, id: id) + "reservation.json" }
    public static func artifactKey(policy: String, id: String, path: String) -> String { backupDirectory(policy: policy, id: id) + path }

    // MARK: Listing

    /// The policies that have backups in the repository, read from the repository alone
    /// (the top-level prefixes that hold a `backups/` folder).
    public func policyNames() throws -> [String] {
        var names: [String] = []
        try store.forEachEntry(delimiter: "/") { entry in
            if case .prefix(let prefix) = entry, prefix != Self.locksPrefix, isValidPolicyName(String(prefix.dropLast())) {
                names.append(String(prefix.dropLast()))
            }
            return true
        }
        return names
    }

    /// What the store holds for one backup directory.
    public struct BackupListing: Sendable, Equatable {
        public var id: String
        /// Whether its manifest is committed. A backup without one is in progress or was
        /// interrupted: it is never listed as complete, verified or restored; `prune` removes
        /// it once its reservation is stale.
        public var committed: Bool
        public var hasReservation: Bool
        public var objectCount: Int
        public var bytes: Int64
    }

    /// Every backup directory of a policy, oldest first, committed or not. Streams the
    /// listing: memory grows with the number of backups, not of objects.
    public func listBackups(policy: String) throws -> [BackupListing] {
        let prefix = Self.backupPrefix(policy: policy)
        var byID: [String: BackupListing] = [:]
        try store.forEachObject(prefix: prefix) { object in
            let rest = object.key.dropFirst(prefix.count)
            guard let slash = rest.firstIndex(of: "/") else { return true }
            let id = String(rest[..<slash])
            guard BackupID.isValid(id) else { return true }
            var listing = byID[id] ?? BackupListing(id: id, committed: false, hasReservation: false, objectCount: 0, bytes: 0)
            listing.objectCount += 1
            listing.bytes += object.size
            switch rest[rest.index(after: slash)...] {
            case "manifest.json": listing.committed = true
            case "reservation.json": listing.hasReservation = true
            default: break
            }
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
                throw LifeboatError(.notFound, "backup \(id) of policy '\(policy)' has no committed manifest: it is in progress or was interrupted, and cannot be restored",
                                    hint: "Choose another backup ('lifeboat list \(policy) --all' shows its state).")
            }
            throw LifeboatError(.notFound, "policy '\(policy)' has no backup \(id) in \(store.location)",
                                hint: "Run 'lifeboat list \(policy)' to see its backups.")
        }
        let manifest: Manifest
        do {
            manifest = try ManifestDocument.decode(bytes, describe: Self.describe(decodingError:))
        } catch .damaged(let why) {
            throw LifeboatError(.integrity, "manifest \(locate(key)) is damaged and cannot be read: \(why)",
                                hint: "Restore another backup of '\(policy)'; this one cannot be used without its manifest.")
        } catch .tooNew(let format) {
            throw LifeboatError(.usage, "manifest \(locate(key)) has format \(format); this Lifeboat reads format \(Manifest.currentFormat) and older",
                                hint: "Upgrade Lifeboat to restore this backup.")
        }
        guard manifest.policy == policy, manifest.id == id else {
            throw LifeboatError(.integrity, "manifest \(locate(key)) describes backup \(manifest.id) of policy '\(manifest.policy)', not \(id) of '\(policy)'",
                                hint: "The manifest was moved or tampered with: restore another backup.")
        }
        return manifest
    }

    /// Resolves `latest` or an identifier to a committed manifest. `latest` is the newest
    /// backup whose manifest reads; a damaged newer one is skipped, and `warn` says so.
    public func resolve(policy: String, selector: String, warn: (String) -> Void = { _ in }) throws -> Manifest {
        if selector == "latest" {
            let committed = try listBackups(policy: policy).filter(\.committed)
            guard !committed.isEmpty else {
                let known = (try? policyNames()) ?? []  // only to word the hint; the error stands either way
                var hint = "Run 'lifeboat backup \(policy)' first, or check the policy's name ('lifeboat list')."
                if !known.isEmpty, !known.contains(policy) {
                    hint = "This repository holds backups of: \(known.joined(separator: ", "))"
                        + (closestMatch(to: policy, among: known).map { " (did you mean '\($0)'?)" } ?? "") + "."
                }
                throw LifeboatError(.notFound, "policy '\(policy)' has no committed backup in repository '\(name)' (\(store.location))",
                                    hint: hint)
            }
            var firstError: (any Error)?
            for listing in committed.reversed() {
                do {
                    return try manifest(policy: policy, id: listing.id)
                } catch let error as LifeboatError where error.code == .integrity {
                    warn("skipping backup \(listing.id) for 'latest': \(error.message)")
                    if firstError == nil { firstError = error }
                }
            }
            throw firstError ?? LifeboatError(.notFound, "policy '\(policy)' has no readable backup")
        }
        guard BackupID.isValid(selector) else {
            throw LifeboatError(.usage, "'\(selector)' is not a backup id (like 20261121T020000Z-k3f9q2) or 'latest'")
        }
        return try manifest(policy: policy, id: selector)
    }

    /// The commit point: writes the manifest atomically, refusing to replace one.
    public func commit(_ manifest: Manifest) throws {
        let key = Self.manifestKey(policy: manifest.policy, id: manifest.id)
        do {
            try store.put(key: key, bytes: try ManifestDocument.encode(manifest), ifAbsent: true)
        } catch let error as LifeboatError where error.code == .alreadyExists {
            throw LifeboatError(
                .alreadyExists, "backup \(manifest.id) of policy '\(manifest.policy)' is already committed at \(locate(key)); a committed backup is never replaced",
                hint: "Backup ids are reserved before use, so this should not happen; run the backup again, and report it.",
                underlying: error)
        }
    }

    /// A decoding error in a sentence: which field, and what was wrong.
    static func describe(decodingError error: any Error) -> String {
        guard let error = error as? DecodingError else { return "\(error)" }
        func path(_ context: DecodingError.Context) -> String {
            let text = context.codingPath.map { $0.intValue.map { "[\($0)]" } ?? ".\($0.stringValue)" }.joined()
            return text.isEmpty ? "the document" : String(text.drop { $0 == "." })
        }
        switch error {
        case .dataCorrupted(let context):
            return context.codingPath.isEmpty ? "not valid JSON" : "\(path(context)): \(context.debugDescription)"
        case .keyNotFound(let key, let context):
            return "\(path(context)): missing '\(key.stringValue)'"
        case .typeMismatch(_, let context), .valueNotFound(_, let context):
            return "\(path(context)): \(context.debugDescription)"
        @unknown default:
            return "\(error)"
        }
    }

    func isValidPolicyName(_ name: String) -> Bool {
        guard let first = name.unicodeScalars.first, first.properties.isAlphabetic || ("0"..."9").contains(first) else { return false }
        return name.count <= 100 && name.unicodeScalars.allSatisfy { ("a"..."z").contains($0) || ("A"..."Z").contains($0) || ("0"..."9").contains($0) || $0 == "." || $0 == "_" || $0 == "-" }
    }
}
