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
    public static let all: [any SourceKind] = [PostgresKind(), FilesKind(), S3MirrorKind()]

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
