import Foundation
import LifeboatArchive
import LifeboatCore

/// One kind of thing Lifeboat backs up. Each kind lives in a folder of its own under
/// `SourceKinds/` — its configuration model and parser, its manifest record, its artifact
/// roles, its backup and its restore — and is registered once, in `SourceKinds.all`. Nothing
/// else in the engine switches over kinds.
public protocol SourceKind: Sendable {
    /// The key under a policy's `source:`, and `source.kind` in manifests.
    var name: String { get }

    /// Reads a policy's `source.<name>`.
    var parser: SourceKindParser { get }

    /// Backs up a configured source: writes every artifact through `sink` and returns the
    /// record kept in the manifest. Throwing at any point leaves no committed backup.
    func backup(_ configuration: any SourceConfiguration, into sink: ArtifactSink, context: RunContext) throws -> BackupOutcome

    /// What `restore --to TEXT` means for `manifest`, a backup of this kind (a directory, a
    /// server, a data directory, …).
    func restoreLocation(commandLine text: String, workingDirectory: String, manifest: Manifest) throws -> RestoreTarget.Location

    /// The backup a restore to `target` uses. `selected` is the one the command named
    /// (`explicit`) or the newest one; a kind whose restores reach points between backups
    /// (point-in-time recovery) may choose another. The default keeps `selected`.
    func chooseBackup(selected: Manifest, explicit: Bool, target: RestoreTarget, repository: Repository,
                      context: RunContext) throws -> Manifest

    /// Restores a committed backup of this kind. `configuration` is the policy's source when a
    /// configuration is at hand (nil when restoring from the repository alone): settings such
    /// as where the client programs are come from it, everything else from the manifest.
    func restore(_ manifest: Manifest, from repository: Repository, to target: RestoreTarget,
                 configuration: (any SourceConfiguration)?, context: RunContext) throws -> RestoreReport

    /// For kinds whose restores reach any point between backups (point-in-time recovery): the
    /// intervals of points a policy's repository can restore to, and the committed backups
    /// that cannot be restored (with why). Nil for other kinds.
    func recoverability(policy: String, repository: Repository, context: RunContext) throws -> Recoverability?

    /// What `verify` checks besides the backup's own artifacts (a base backup: the WAL it
    /// needs), as problems.
    func verifyDependencies(of manifest: Manifest, in repository: Repository, context: RunContext) throws -> [VerificationProblem]

    /// `verifyDependencies` with `verify`'s options (`--read-data`); the default ignores them.
    func verifyDependencies(of manifest: Manifest, in repository: Repository, options: VerifyOptions,
                            context: RunContext) throws -> [VerificationProblem]

    /// What `list` shows of a committed backup besides its artifacts (an S3 mirror: objects
    /// and bytes per bucket); nil for nothing more.
    func listSummary(of manifest: Manifest) -> ListSummary?

    /// What a restore of this kind that failed or was cancelled half-way leaves in `target`,
    /// and what to do about it: a whole sentence, for the error's hint.
    func leftovers(of target: RestoreTarget) -> String

    /// The earliest moment a restore of `manifest` reaches, for `retention.recovery_window`
    /// (which keeps the newest backup consistent at or before the window's start). A base
    /// backup's consistent point; by default the backup's end (`finishedAt`).
    func consistentPoint(of manifest: Manifest) -> Date

    /// Deletes what this kind stores for `policy` outside its backups' directories that no
    /// backup in `kept` needs, and says what it deleted. PostgreSQL deletes archived WAL older
    /// than the oldest kept base backup; S3 mirrors will delete blobs no kept snapshot
    /// references. Returns nil when the kind stores nothing outside its backups (the default).
    ///
    /// **When prune calls it.** Once per policy, after the policy's expired backups and
    /// crashed runs' leftovers are deleted, and only when all of this holds:
    /// - this process holds the repository's exclusive lock: no backup, verify, restore or
    ///   other prune runs against the repository (`wal-push` and `wal-fetch` take no lock and
    ///   may run at any time);
    /// - the policy has no reservation whose owner still runs, and none that cannot be read:
    ///   no backup of the policy is being written, so nothing a run that has not committed
    ///   wrote or relies on exists to be taken (dependencies are collected only then; there is
    ///   no grace period — a prune that finds a run in progress leaves the policy's
    ///   dependencies to the next prune, and says so);
    /// - every committed manifest of the policy reads (a damaged one could need anything);
    /// - the policy has retention rules (one without keeps everything).
    ///
    /// `kept` is every committed backup of the policy that remains after this prune (with
    /// `dryRun`, that would remain), oldest first; it may be empty, and may hold backups of
    /// another kind if the policy changed kinds.
    ///
    /// **What the kind must do.**
    /// - Never delete anything a backup in `kept` needs to be verified or restored, nor
    ///   anything a lock-free writer (`wal-push`) may still compare against or need; when in
    ///   doubt, keep.
    /// - Decide from the repository alone (no local state), and delete in an order that leaves
    ///   a consistent repository wherever the process is killed: whatever a killed prune
    ///   leaves, the next one deletes (deleting an object already gone is not an error).
    /// - With `dryRun`, delete nothing and report what it would delete.
    /// - Stop at the first failure and throw an error naming the object (prune then deletes
    ///   nothing more); check `context.cancellation` between deletions.
    func pruneDependencies(policy: String, kept: [Manifest], in repository: Repository, dryRun: Bool,
                           context: RunContext) throws -> DependencyPruneReport?

    /// Where this kind writes for `policy` without holding a repository lock (PostgreSQL:
    /// the WAL archive, which `wal-push` writes): prune discards the incomplete writes it finds
    /// there only once they are older than its grace (`PruneCommand.incompleteWriteGrace`),
    /// since a live writer may be at work. Default: nowhere.
    func lockFreeWritePrefixes(policy: String) -> [String]
}

/// What a source kind's `pruneDependencies` deleted (or, in a dry run, would delete).
public struct DependencyPruneReport: Sendable, Encodable, Equatable {
    /// What the objects are, plural: "WAL files", "blobs".
    public var what: String
    /// Objects deleted (with dryRun: that would be deleted), and their stored bytes.
    public var deletedObjects: Int
    public var deletedBytes: Int64
    /// Objects left in place.
    public var keptObjects: Int
    /// What bounded the deletion, as a sentence ("WAL before segment …, where base backup …,
    /// the oldest kept, starts").
    public var detail: String

    public init(what: String, deletedObjects: Int, deletedBytes: Int64, keptObjects: Int, detail: String) {
        self.what = what
        self.deletedObjects = deletedObjects
        self.deletedBytes = deletedBytes
        self.keptObjects = keptObjects
        self.detail = detail
    }
}

extension SourceKind {
    public func recoverability(policy: String, repository: Repository, context: RunContext) throws -> Recoverability? { nil }

    public func verifyDependencies(of manifest: Manifest, in repository: Repository, context: RunContext) throws -> [VerificationProblem] { [] }

    public func listSummary(of manifest: Manifest) -> ListSummary? { nil }

    public func verifyDependencies(of manifest: Manifest, in repository: Repository, options: VerifyOptions,
                                   context: RunContext) throws -> [VerificationProblem] {
        try verifyDependencies(of: manifest, in: repository, context: context)
    }

    public func chooseBackup(selected: Manifest, explicit: Bool, target: RestoreTarget, repository: Repository,
                             context: RunContext) throws -> Manifest {
        selected
    }

    public func consistentPoint(of manifest: Manifest) -> Date { manifest.finishedAt }

    public func pruneDependencies(policy: String, kept: [Manifest], in repository: Repository, dryRun: Bool,
                                  context: RunContext) throws -> DependencyPruneReport? {
        nil
    }

    public func lockFreeWritePrefixes(policy: String) -> [String] { [] }
}

extension SourceConfiguration {
    /// The configuration a kind was given, as that kind's own type. The registry hands each
    /// kind the configurations its parser made, so a mismatch is a bug.
    static func of(_ configuration: any SourceConfiguration) throws -> Self {
        guard let typed = configuration as? Self else {
            throw LifeboatError(.internalError, "a '\(configuration.kind)' source was given to the code of another kind (\(Self.self))",
                                hint: "Report this as a bug in Lifeboat.")
        }
        return typed
    }
}

/// What a policy's repository can restore to, between and beyond its backups.
public struct Recoverability: Sendable {
    public var intervals: [RecoverableInterval]
    /// Committed backups that cannot be restored, by id, with the reason.
    public var unusable: [String: String]

    public init(intervals: [RecoverableInterval], unusable: [String: String]) {
        self.intervals = intervals
        self.unusable = unusable
    }
}

/// How deeply `verify` checks what a backup refers to outside its artifacts.
public struct VerifyOptions: Sendable, Equatable {
    /// S3 mirrors: read every blob the snapshot references again and check its SHA-256 (else
    /// only that each exists, with its size).
    public var readData: Bool
    /// S3 mirrors: read only this part of the blobs (`--read-data-subset n/t`).
    public var subset: BlobSubset?

    public init(readData: Bool = false, subset: BlobSubset? = nil) {
        self.readData = readData
        self.subset = subset
    }
}

/// What `list` says of a backup beyond its artifacts.
public struct ListSummary: Sendable, Equatable {
    /// The bytes of the source the backup holds, when the artifacts' entries do not say it
    /// (an S3 mirror's artifacts hold listings; its objects are blobs).
    public var sourceBytes: Int64?
    /// Lines for people: one per bucket, …
    public var lines: [String]

    public init(sourceBytes: Int64? = nil, lines: [String] = []) {
        self.sourceBytes = sourceBytes
        self.lines = lines
    }
}

/// What a source's backup produced, besides its artifacts.
public struct BackupOutcome: Sendable {
    /// The source's record for the manifest.
    public var record: SourceRecord
    /// Entries the source could not back up (a socket, a file that vanished during the walk),
    /// each with its reason. A backup with skipped entries is committed, and reported as
    /// incomplete.
    public var skipped: [SkippedEntry]

    public init(record: SourceRecord, skipped: [SkippedEntry] = []) {
        self.record = record
        self.skipped = skipped
    }
}

/// What a restore did, for the command line's report.
public struct RestoreReport: Sendable, Encodable {
    public var policy: String
    public var backup: String
    /// The target as a person reads it (no password).
    public var target: String
    /// What was restored: database names, or a count of entries.
    public var restored: [String]
    /// Things left as they were on the target, such as roles that already existed.
    public var kept: [String]
    public var warnings: [String]
    /// What the operator does next (start the server, …).
    public var next: [String] = []
    public var seconds: Double

    public init(policy: String, backup: String, target: String, restored: [String] = [], kept: [String] = [],
                warnings: [String] = [], seconds: Double = 0) {
        self.policy = policy
        self.backup = backup
        self.target = target
        self.restored = restored
        self.kept = kept
        self.warnings = warnings
        self.seconds = seconds
    }
}

/// The registry: every source kind Lifeboat knows, in one place.
public enum SourceKinds {
    public static let all: [any SourceKind] = [PostgresKind(), FilesKind(), RedisKind(), S3MirrorKind()]

    /// How each kind reads its configuration, for `ConfigurationParser`.
    public static var parsers: [SourceKindParser] { all.map(\.parser) }

    /// The kind of a name (`source.kind` of a manifest); throws when this version has none.
    public static func named(_ name: String, for what: String) throws -> any SourceKind {
        guard let kind = all.first(where: { $0.name == name }) else {
            throw LifeboatError(.usage, "\(what) holds a '\(name)' source, which this version of Lifeboat cannot handle",
                                hint: "Use a Lifeboat version that knows '\(name)' sources (this one knows \(all.map(\.name).joined(separator: ", "))).")
        }
        return kind
    }
}
