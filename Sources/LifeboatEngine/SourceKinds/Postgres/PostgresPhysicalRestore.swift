import Foundation
import LifeboatArchive
import LifeboatCore
import LifeboatIO
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Restores a base backup into a data directory and sets up point-in-time recovery: the
/// server, once started, replays archived WAL (fetched by `lifeboat wal-fetch`) up to the
/// target.
///
/// Before anything is written, the target is checked against what the repository holds: a
/// target outside the recoverable range is refused with the range named. Every file is checked
/// against the manifest as it is written; files and directories are synced before recovery is
/// configured. A restore that fails into an empty directory removes what it wrote; a delta
/// restore first removes `global/pg_control`, so that a half-restored directory cannot start.
struct PostgresPhysicalRestore {
    let manifest: Manifest
    let repository: Repository
    let context: RunContext

    /// The options of `target`, or the defaults (recover to the end of the archived WAL).
    static func options(_ target: RestoreTarget) -> RecoveryOptions { target.recovery ?? RecoveryOptions() }

    /// Plans the restore: the base backup for the target (`selected` when `explicit`), and the
    /// interval the target lies in. Throws, naming the recoverable range, when it lies outside.
    static func choose(selected: Manifest, explicit: Bool, target: RestoreTarget, repository: Repository,
                       context: RunContext) throws -> (manifest: Manifest, choice: RecoveryChoice) {
        let options = options(target)
        let inventory = try PhysicalRecoveryInventory.load(repository: repository, policy: selected.policy, context: context)
        let choice = try RecoveryPlanner.choose(target: options.target, timeline: options.timeline, backups: inventory.backups,
                                                explicit: explicit ? selected.id : nil, wal: inventory.wal)
        guard let manifest = inventory.manifests[choice.backup.id] else {
            throw LifeboatError(.internalError, "the planner chose backup \(choice.backup.id), which has no manifest",
                                hint: "Report this as a bug in Lifeboat.")
        }
        return (manifest, choice)
    }

    func run(to target: RestoreTarget) throws -> RestoreReport {
        guard case .dataDirectory(let directory) = target.location else {
            throw LifeboatError(.usage, "a physical PostgreSQL backup is restored into a data directory, not \(target.location)",
                                hint: "Give --to the path of a new or empty data directory.")
        }
        guard let record = try PostgresKind.physicalRecord(of: manifest) else {
            throw LifeboatError(.internalError, "backup \(manifest.id) is not a base backup", hint: "Report this as a bug in Lifeboat.")
        }
        let options = Self.options(target)
        guard let restoreCommand = options.restoreCommand else {
            throw LifeboatError(.internalError, "no restore_command was given for the recovery of backup \(manifest.id)",
                                hint: "Report this as a bug in Lifeboat.")
        }
        // Checked again for this backup (the command named it, or the plan chose it).
        let (_, choice) = try Self.choose(selected: manifest, explicit: true, target: target, repository: repository, context: context)
        let tablespaces = try tablespaceLocations(record, options: options)
        let postgres = try ownerOfDataDirectory()

        // The data directory: new, or empty, or (with --delta) the one to bring back.
        let created = !pathExists(directory)
        if created {
            try makeDirectories(directory, mode: 0o700)
        } else if !isDirectory(directory) {
            throw LifeboatError(.targetNotEmpty, "restore target '\(directory)' exists and is not a directory")
        }
        guard let held = try DirectoryLock.tryExclusive(directory) else {
            throw LifeboatError(.targetNotEmpty, "another restore is writing into '\(directory)'",
                                hint: "Wait for it to finish, or restore into another directory.")
        }
        defer { held.release() }
        if pathExists(directory + "/postmaster.pid") {
            throw LifeboatError(.targetNotEmpty, "data directory '\(directory)' holds postmaster.pid: a server may be running on it",
                                hint: "Stop the server first (pg_ctl -D \(directory) stop); if none runs, remove postmaster.pid.")
        }
        var existing = try directoryEntries(directory)
        for (_, location) in tablespaces where isDirectory(location) { existing += try directoryEntries(location).map { "\(location)/\($0)" } }
        if !existing.isEmpty && !options.delta {
            throw LifeboatError(.targetNotEmpty, "restore target '\(directory)' (or one of its tablespace locations) is not empty (\(existing.count) entr\(existing.count == 1 ? "y" : "ies"), e.g. '\(existing[0])')",
                                hint: "Restore into a new or empty directory, or give --delta to bring this one back to the backup (only files that differ are written; files the backup does not have are removed).")
        }
        context.logger.info("restoring base backup", metadata: [
            "restore.target": "\(directory)", "postgres.timeline": "\(choice.timeline)",
            "postgres.recovery_target": "\(options.target)", "restore.delta": "\(options.delta)",
        ])

        var written = false
        do {
            if options.delta {
                // Without pg_control the directory cannot start until the restore has finished.
                if unlink(directory + "/global/pg_control") != 0 && errno != ENOENT {
                    throw LifeboatError(.io, "unable to remove '\(directory)/global/pg_control' before a delta restore: \(errnoText())")
                }
            }
            written = true
            let jobs = try extractionJobs(record: record, directory: directory, tablespaces: tablespaces, owner: postgres)
            let (changed, unchanged) = try extract(jobs, delta: options.delta, parallel: target.parallel ?? RestoreTarget.automaticParallelism)
            try postgres?.give(directory)
            if chmod(directory, 0o700) != 0 { throw LifeboatError(.io, "unable to make '\(directory)' private (0700): \(errnoText())") }

            if let manifestArtifact = manifest.artifacts.first(where: { $0.role == .postgresBackupManifest }) {
                // One file entry, `backup_manifest`, checked like every other as it is written.
                unlink(directory + "/backup_manifest")
                _ = try extract(manifestArtifact, into: directory, options: ExtractionOptions(), delta: false)
                try postgres?.give(directory + "/backup_manifest")
            }
            if options.delta { try removeExtras(in: directory, tablespaces: tablespaces) }
            try configureRecovery(in: directory, options: options, restoreCommand: restoreCommand, owner: postgres)
            try syncFileSystems([directory] + tablespaces.values.sorted())
            context.logger.info("base backup restored", metadata: [
                "restore.target": "\(directory)", "restore.files_written": "\(changed)", "restore.files_unchanged": "\(unchanged)",
            ])
            var report = RestoreReport(policy: manifest.policy, backup: manifest.id, target: directory)
            report.restored.append("base backup \(manifest.id) (consistent from \(RecoveryTarget.format(record.stopTime)), \(record.stopLSN), timeline \(record.timeline))")
            report.restored.append("recovery to \(options.target) on timeline \(choice.timeline); archived WAL reaches \(choice.interval.toLSN) (archived by \(RecoveryTarget.format(choice.interval.toTime)))")
            for (oid, location) in tablespaces.sorted(by: { $0.key < $1.key }) { report.restored.append("tablespace \(oid) in \(location)") }
            if options.delta { report.restored.append("\(changed) files written, \(unchanged) already as in the backup") }
            report.next.append("start the server (e.g. pg_ctl -D \(directory) start): it replays archived WAL through 'lifeboat wal-fetch' to \(options.target)"
                               + (options.target == .latest ? " and is promoted" : ", then does '\(options.action.rawValue)'"))
            report.next.append("before it starts, 'pg_verifybackup -n \(directory)' checks the restored files against PostgreSQL's own backup_manifest")
            return report
        } catch {
            if written && !options.delta { removeWhatWasRestored(directory, created: created, tablespaces: tablespaces) }
            throw error
        }
    }

    // MARK: Steps

    /// Where each tablespace goes: `--tablespace-map OLD=NEW`, else where it was. A mapping
    /// of a location the backup does not have is an error (a typo would otherwise restore over
    /// the original location).
    func tablespaceLocations(_ record: PhysicalBackupRecord, options: RecoveryOptions) throws -> [UInt32: String] {
        let known = Set(record.tablespaces.map(\.location))
        for old in options.tablespaceMap.keys where !known.contains(old) {
            throw LifeboatError(.usage, "--tablespace-map names '\(old)', which is not a tablespace location of backup \(manifest.id)",
                                hint: record.tablespaces.isEmpty ? "The backup has no tablespaces besides the data directory."
                                    : "Its tablespaces are at: \(record.tablespaces.map(\.location).joined(separator: ", ")).")
        }
        var result: [UInt32: String] = [:]
        for tablespace in record.tablespaces {
            let location = options.tablespaceMap[tablespace.location] ?? tablespace.location
            guard location.hasPrefix("/") else {
                throw LifeboatError(.usage, "tablespace location '\(location)' is not an absolute path", hint: "Give --tablespace-map OLD=NEW with absolute paths.")
            }
            result[tablespace.oid] = location
        }
        return result
    }

    /// One artifact to extract, and where.
    struct ExtractionJob: Sendable {
        var artifact: ArtifactRecord
        var directory: String
        var options: ExtractionOptions
        /// What it costs to extract, about: the bytes read and the bytes written.
        var cost: Int64 { artifact.size + artifact.entries.reduce(0) { $0 + $1.size } }
    }

    /// Every part of every tablespace (into its location, made `0700` and given to the
    /// server's user), then every part of the data directory (its tablespace links pointing
    /// at the new locations). Throws `.integrity` when the manifest does not add up: a part
    /// missing, or an artifact that belongs to no tablespace.
    func extractionJobs(record: PhysicalBackupRecord, directory: String, tablespaces: [UInt32: String],
                        owner: FileOwner?) throws -> [ExtractionJob] {
        let artifacts = Dictionary(manifest.artifacts.map { ($0.path, $0) }, uniquingKeysWith: { first, _ in first })
        var jobs: [ExtractionJob] = []
        for tablespace in record.tablespaces {
            guard let location = tablespaces[tablespace.oid] else { continue }
            try makeDirectories(location, mode: 0o700)
            try owner?.give(location)
            for path in tablespace.artifacts {
                guard let artifact = artifacts[path], artifact.role == .postgresTablespace else {
                    throw LifeboatError(.integrity, "backup \(manifest.id) records artifact \(path) for tablespace \(tablespace.oid), and its manifest has no such tablespace artifact",
                                        hint: "Restore another backup; run 'lifeboat verify' on this one.")
                }
                jobs.append(ExtractionJob(artifact: artifact, directory: location, options: ExtractionOptions()))
            }
        }
        let claimed = Set(record.tablespaces.flatMap(\.artifacts))
        if let stray = manifest.artifacts.first(where: { $0.role == .postgresTablespace && !claimed.contains($0.path) }) {
            throw LifeboatError(.integrity, "artifact \(stray.path) of backup \(manifest.id) belongs to no tablespace of its record",
                                hint: "Restore another backup; run 'lifeboat verify' on this one.")
        }
        let base = manifest.artifacts.filter { $0.role == .postgresBase }
        guard !base.isEmpty else {
            throw LifeboatError(.integrity, "backup \(manifest.id) has no artifact holding its data directory",
                                hint: "Restore another backup; run 'lifeboat verify' on this one.")
        }
        var links: [EntryPath: EntryPath] = [:]
        for tablespace in record.tablespaces {
            links[EntryPath("pg_tblspc/\(tablespace.oid)")] = EntryPath(tablespaces[tablespace.oid] ?? tablespace.location)
        }
        for artifact in base {
            jobs.append(ExtractionJob(artifact: artifact, directory: directory, options: ExtractionOptions(symlinkTargets: links)))
        }
        return jobs
    }

    /// Extracts the jobs on up to `parallel` threads of their own, the costliest first (so
    /// that no long one is left for last). Parts of one directory may be extracted at once:
    /// each file is in one part, and libarchive makes the directories a file needs when the
    /// part holding them has not yet run (the directory's own entry then sets its mode). After
    /// a failure no further job starts; the first error (by job order) is thrown, a
    /// cancellation before anything else. Returns the files written and those already as
    /// recorded (delta).
    func extract(_ jobs: [ExtractionJob], delta: Bool, parallel: Int) throws -> (changed: Int, unchanged: Int) {
        let order = jobs.indices.sorted { jobs[$0].cost > jobs[$1].cost }
        let results = ResultSlots<Result<(changed: Int, unchanged: Int), any Error>>(count: jobs.count)
        let failed = Atomic<Bool>(false)
        Threads.run(order.map { index in
            let job = jobs[index]
            return { @Sendable in
                guard !failed.load(ordering: .relaxed) else { return }
                let result = Result { try self.extract(job.artifact, into: job.directory, options: job.options, delta: delta) }
                if case .failure = result { failed.store(true, ordering: .relaxed) }
                results.set(index, result)
                CrashPoint.restoringPart.reach(self.context)
            }
        }, width: parallel, name: "lifeboat-restore")
        var changed = 0, unchanged = 0
        var errors: [any Error] = []
        for result in results.values {
            switch result {
            case .success(let counts):
                changed += counts.changed
                unchanged += counts.unchanged
            case .failure(let error):
                errors.append(error)
            case nil:
                break
            }
        }
        if let cancelled = errors.first(where: { ($0 as? LifeboatError)?.code == .cancelled }) { throw cancelled }
        if let error = errors.first { throw error }
        return (changed, unchanged)
    }

    /// Extracts one artifact; in a delta restore, files already as recorded are only checked.
    func extract(_ artifact: ArtifactRecord, into directory: String, options: ExtractionOptions, delta: Bool) throws -> (changed: Int, unchanged: Int) {
        var options = options
        if delta {
            for entry in artifact.entries where entry.kind == .file {
                let path = directory + "/" + entry.path
                var info = stat()
                guard lstat(path, &info) == 0, info.st_mode & S_IFMT == S_IFREG, Int64(info.st_size) == entry.size else { continue }
                if try sha256OfFile(atPath: path).sha256 == entry.sha256 {
                    options.unchanged.insert(EntryPath(recordedPathOf: entry))
                    if let mode = entry.mode, info.st_mode & 0o7777 != mode { _ = chmod(path, mode_t(mode)) }
                }
            }
        }
        let source = try repository.openArtifact(artifact, of: manifest, context: context)
        defer { source.close() }
        try extractArtifact(artifact, source: source, to: directory, options: options)
        let files = artifact.entries.filter { $0.kind == .file }.count
        return (files - options.unchanged.count, options.unchanged.count)
    }

    /// Recovery settings appended to `postgresql.auto.conf` (later lines win), and
    /// `recovery.signal`.
    func configureRecovery(in directory: String, options: RecoveryOptions, restoreCommand: String, owner: FileOwner?) throws {
        var text = "\n# Recovery settings written by 'lifeboat restore' (backup \(manifest.id) of policy '\(manifest.policy)').\n"
            + "# PostgreSQL keeps them after recovery; remove them once the restored server runs.\n"
        for setting in options.settings(restoreCommand: restoreCommand) { text += "\(setting.key) = \(setting.value)\n" }
        let auto = directory + "/postgresql.auto.conf"
        try appendText(text, to: auto)
        try owner?.give(auto)
        let signal = directory + "/recovery.signal"
        try appendText("", to: signal)
        try owner?.give(signal)
        for stale in ["standby.signal"] where pathExists(directory + "/" + stale) {
            context.logger.warning("the data directory holds \(stale); PostgreSQL starts it as a standby", metadata: ["restore.target": "\(directory)"])
        }
    }

    /// Delta restore: removes what the backup does not have (never following links).
    func removeExtras(in directory: String, tablespaces: [UInt32: String]) throws {
        func keep(_ artifacts: [ArtifactRecord]) -> Set<String> {
            Set(artifacts.flatMap { $0.entries.map(\.path) })
        }
        var roots: [(String, Set<String>)] = []
        var baseKeep = keep(manifest.artifacts.filter { $0.role == .postgresBase })
        baseKeep.formUnion(["backup_manifest", "postgresql.auto.conf", "recovery.signal"])
        roots.append((directory, baseKeep))
        let record = try PostgresKind.physicalRecord(of: manifest)
        for tablespace in record?.tablespaces ?? [] {
            guard let location = tablespaces[tablespace.oid] else { continue }
            roots.append((location, keep(manifest.artifacts.filter { tablespace.artifacts.contains($0.path) })))
        }
        var removed = 0
        for (root, kept) in roots {
            func walk(_ relative: String) throws {
                let path = relative.isEmpty ? root : root + "/" + relative
                for name in try directoryEntries(path) {
                    let child = relative.isEmpty ? name : relative + "/" + name
                    let full = root + "/" + child
                    var info = stat()
                    guard lstat(full, &info) == 0 else { continue }
                    if !kept.contains(child) {
                        try FileManager.default.removeItem(atPath: full)
                        removed += 1
                    } else if info.st_mode & S_IFMT == S_IFDIR {
                        try walk(child)
                    }
                }
            }
            try walk("")
        }
        if removed > 0 { context.logger.info("delta restore removed what the backup does not have", metadata: ["restore.removed": "\(removed)"]) }
    }

    /// Who will run the server: when Lifeboat runs as root, the owner the backup recorded for
    /// the data directory's files (by name when this machine knows it), so that PostgreSQL
    /// accepts the directory; otherwise the user running the restore owns everything.
    func ownerOfDataDirectory() throws -> FileOwner? {
        guard geteuid() == 0 else { return nil }
        let entry = manifest.artifacts.filter { $0.role == .postgresBase }.lazy.compactMap { $0.entries.first { $0.path == "global" || $0.path == "global/" } }.first
        if let name = entry?.user, let pw = getpwnam(name) { return FileOwner(uid: pw.pointee.pw_uid, gid: pw.pointee.pw_gid) }
        if let uid = entry?.uid, let gid = entry?.gid { return FileOwner(uid: uid, gid: gid) }
        if let pw = getpwnam("postgres") { return FileOwner(uid: pw.pointee.pw_uid, gid: pw.pointee.pw_gid) }
        return nil
    }

    func syncFileSystems(_ paths: [String]) throws {
        for path in paths { try syncFileSystem(of: path) }
    }

    func removeWhatWasRestored(_ directory: String, created: Bool, tablespaces: [UInt32: String]) {
        do {
            for location in tablespaces.values where isDirectory(location) {
                for name in try directoryEntries(location) { try FileManager.default.removeItem(atPath: location + "/" + name) }
            }
            if created {
                try FileManager.default.removeItem(atPath: directory)
            } else {
                for name in try directoryEntries(directory) { try FileManager.default.removeItem(atPath: directory + "/" + name) }
            }
            context.logger.info("removed what the failed restore had written", metadata: ["restore.target": "\(directory)"])
        } catch {
            context.logger.warning("could not remove what the failed restore had written; remove it before restoring again",
                                   metadata: ["restore.target": "\(directory)", "error": "\(error)"])
        }
    }
}

/// A user and group that files are given to.
struct FileOwner {
    var uid: uid_t
    var gid: gid_t

    /// Gives `path` and, for a directory, everything under it (never following links).
    func give(_ path: String) throws {
        var info = stat()
        guard lstat(path, &info) == 0 else { throw LifeboatError(.io, "unable to look at '\(path)': \(errnoText())") }
        if info.st_uid != uid || info.st_gid != gid, lchown(path, uid, gid) != 0 {
            throw LifeboatError(.io, "unable to give '\(path)' to uid \(uid): \(errnoText())")
        }
        if info.st_mode & S_IFMT == S_IFDIR {
            for name in try directoryEntries(path) { try give(path + "/" + name) }
        }
    }
}

/// Appends text to a file (created 0600), synced.
func appendText(_ text: String, to path: String) throws {
    let fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o600)
    guard fd >= 0 else { throw LifeboatError(.io, "unable to open '\(path)': \(errnoText())") }
    defer { close(fd) }
    let bytes = Array(text.utf8)
    var offset = 0
    while offset < bytes.count {
        let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + offset, bytes.count - offset) }
        if n < 0 {
            if errno == EINTR { continue }
            throw LifeboatError(.io, "unable to write '\(path)': \(errnoText())")
        }
        offset += n
    }
    guard fsync(fd) == 0 else { throw LifeboatError(.io, "unable to sync '\(path)': \(errnoText())") }
}
